"""Sana: ``SanaTransformerBlock``s with linear self-attention, cross-attention and a GLU conv MLP (DC-AE, 32x).

The skip forward leaves out ``norm1`` and its modulation when ``attn1`` replays, and ``norm2``, its modulation and
the reshape to an image when ``ff`` replays.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import BlockSkip, BlockStep, class_is, cross_attention, gated_add, modulate, table_modulation

# Efficient-Large-Model/Sana_1600M_1024px_diffusers, transformer/config.json
_SANA_1600M = {
    "_class_name": "SanaTransformer2DModel",
    "attention_bias": False,
    "attention_head_dim": 32,
    "caption_channels": 2304,
    "cross_attention_dim": 2240,
    "cross_attention_head_dim": 112,
    "dropout": 0.0,
    "in_channels": 32,
    "mlp_ratio": 2.5,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "num_attention_heads": 70,
    "num_cross_attention_heads": 20,
    "num_layers": 20,
    "out_channels": 32,
    "patch_size": 1,
    "sample_size": 32,
}


def _forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
    encoder_attention_mask: torch.Tensor | None = None,
    timestep: torch.Tensor | None = None,
    height: int | None = None,
    width: int | None = None,
) -> torch.Tensor:
    """``SanaTransformerBlock.forward`` computing each component's input only if it runs."""
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = table_modulation(
        block.scale_shift_table, timestep, hidden_states.shape[0]
    )
    if step.runs("attn1"):
        attn_input = modulate(block.norm1(hidden_states), scale_msa, shift_msa).to(hidden_states.dtype)
        output = step.compute("attn1", block.attn1, attn_input)
    else:
        output = step.replay("attn1")
    hidden_states = gated_add(gate_msa, output, hidden_states)
    hidden_states = cross_attention(block, step, hidden_states, encoder_hidden_states, encoder_attention_mask)
    if step.runs("ff"):
        ff_input = modulate(block.norm2(hidden_states), scale_mlp, shift_mlp)
        output = step.compute("ff", block.ff, ff_input.unflatten(1, (height, width)).permute(0, 3, 1, 2))
    else:
        output = step.replay("ff")
    return gated_add(gate_mlp, output.flatten(2, 3).permute(0, 2, 1), hidden_states)


class SanaAdapter(ModelAdapter):
    family = "sana"
    transformer_classes = ("SanaTransformer2DModel",)
    vae_factor = 32
    groups = (
        BlockGroup(
            "transformer_blocks", ("attn1", "attn2", "ff"), skip=BlockSkip(_forward, class_is("SanaTransformerBlock"))
        ),
    )
    cross_attention = ("attn2",)
    default_text_len = 300  # SanaPipeline's max_sequence_length
    call_kwargs = {"use_resolution_binning": False}
    presets = {
        "sana-1600m": ArchPreset("sana-1600m", _SANA_1600M, 300, "Efficient-Large-Model/Sana_1600M_1024px_diffusers")
    }

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        return {
            "hidden_states": torch.empty(batch_size, config["in_channels"], height // 32, width // 32, device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["caption_channels"], device=device),
            "timestep": torch.empty(batch_size, device=device),
        }
