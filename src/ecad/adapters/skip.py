"""Skipping the work that only feeds replayed outputs: what an adapter declares, and the pieces block forwards share.

When a component replays its cached output at a step, the block's own forward still computes that component's input
(a norm and the adaLN modulation before PixArt's ``attn1`` or ``ff``, for example) and throws it away. An adapter
declares a :class:`BlockSkip` for a block kind: a forward that does exactly what the block's own forward does, in the
same order and with the same operations (so the result is bit for bit the same), except that it computes a
component's input only when the component runs. When every component of a block replays, what is left is the current
step's modulation, the gates applied to the replayed outputs and the residual adds.

The runtime (:class:`ecad.runtime.hooks.BlockSkipHook`) calls it only at steps where some component of the block
replays; the cost model counts it the same way (:mod:`ecad.cost.counting`). The ``step`` it asks is a plan fixed for the
step (:mod:`ecad.runtime.plans`), so under ``torch.compile`` a skip forward traces into one graph per distinct plan,
with no graph break; the small functions below hold the tensor arithmetic the block forwards share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn


class BlockStep(Protocol):
    """What a skip forward may ask about the step it runs at."""

    def runs(self, component: str) -> bool:
        """Whether ``component`` computes at this step (otherwise its cached output is replayed)."""

    def replay(self, component: str) -> Any:
        """The cached raw output of ``component`` (only for components that do not run)."""

    def compute(self, component: str, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        """Run ``module`` (the component ``component``, only where it runs) and keep its output."""


@dataclass(frozen=True)
class BlockSkip:
    """A block kind's forward that skips the inputs of replayed components.

    Args:
        forward: ``forward(block, step, *args, **kwargs)`` with the block forward's own arguments after ``step``
            (a :class:`BlockStep`); calls a component module, through ``step.compute(name, module, ...)``, only
            when ``step.runs(name)``. Where every component runs it must equal the block's own forward bit for bit:
            the runtime calls it at every step.
        supports: whether a block instance has the configuration ``forward`` was written for (others run their
            own forward at every step, without skipping).
    """

    forward: Callable[..., Any]
    supports: Callable[[nn.Module], bool]


def class_is(*names: str) -> Callable[[nn.Module], bool]:
    return lambda module: type(module).__name__ in names


def joint_adaln_zero(name: str) -> Callable[[nn.Module], bool]:
    """Joint blocks of class ``name`` (FLUX double-stream, HunyuanVideo) whose two adaLN-Zero norms take the
    conditioning as given (no embedding of their own): the layout their skip forwards are written for."""
    return lambda block: (
        type(block).__name__ == name
        and class_is("AdaLayerNormZero")(block.norm1)
        and block.norm1.emb is None
        and block.norm1_context.emb is None
    )


def table_modulation(table: torch.Tensor, timestep: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, ...]:
    """PixArt's and Sana's adaLN-single: six [batch, 1, dim] shift/scale/gate tensors from the block's table."""
    return (table[None] + timestep.reshape(batch_size, 6, -1)).chunk(6, dim=1)


def linear_modulation(norm: nn.Module, emb: torch.Tensor, chunks: int) -> tuple[torch.Tensor, ...]:
    """adaLN-Zero's projection of the conditioning (FLUX, SD3): ``norm.linear(norm.silu(emb))`` in ``chunks``."""
    return norm.linear(norm.silu(emb)).chunk(chunks, dim=1)


def modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def modulate_tokens(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale[:, None]) + shift[:, None]``: [batch, dim] modulation over every token."""
    return x * (1 + scale[:, None]) + shift[:, None]


def gated_add(gate: torch.Tensor, output: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``gate * output + residual`` bit for bit (addition commutes), added in place into the fresh product: one
    full-size allocation fewer per gated residual, which is most of what a replayed block costs."""
    return (gate * output).add_(residual)


def gated_add_tokens(gate: torch.Tensor, output: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``residual + gate.unsqueeze(1) * output`` (a [batch, dim] gate over every token), as :func:`gated_add`."""
    return (gate.unsqueeze(1) * output).add_(residual)


def add_into(own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``own + other`` bit for bit, in place into ``own`` (a tensor the skip forward made) when no gradient is
    recorded (a module that read ``own`` may have saved it for the backward pass)."""
    return own + other if torch.is_grad_enabled() else own.add_(other)


def cross_attention(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None,
    mask: torch.Tensor | None,
    **kwargs: Any,
) -> torch.Tensor:
    """PixArt's and Sana's ungated cross-attention on the residual stream: ``attn2(h, ...) + h``."""
    if block.attn2 is None:
        return hidden_states
    output = (
        step.compute(
            "attn2",
            block.attn2,
            hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            attention_mask=mask,
            **kwargs,
        )
        if step.runs("attn2")
        else step.replay("attn2")
    )
    return add_into(hidden_states, output)


def context_feed_forward(
    block: nn.Module,
    step: BlockStep,
    encoder_hidden_states: torch.Tensor,
    context_attn_output: torch.Tensor,
    gate_msa: torch.Tensor,
    shift_mlp: torch.Tensor,
    scale_mlp: torch.Tensor,
    gate_mlp: torch.Tensor,
) -> torch.Tensor:
    """The text stream of a joint block (FLUX double-stream, SD3) after attention: gated attention output, then
    ``ff_context`` on the modulated ``norm2_context``, gated."""
    encoder_hidden_states = gated_add_tokens(gate_msa, context_attn_output, encoder_hidden_states)
    if step.runs("ff_context"):
        output = step.compute(
            "ff_context",
            block.ff_context,
            modulate_tokens(block.norm2_context(encoder_hidden_states), scale_mlp, shift_mlp),
        )
    else:
        output = step.replay("ff_context")
    return gated_add_tokens(gate_mlp, output, encoder_hidden_states)
