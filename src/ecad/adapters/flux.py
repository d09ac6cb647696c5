"""FLUX.1 (dev, schnell): 19 double-stream blocks (attn, ff, ff_context) and 38 single-stream blocks.

A double-stream block's ``attn`` returns (image, text) together: one component, cached as the tuple. A single-stream
block's ``proj_mlp`` is the MLP branch before its activation, ``proj_out`` mixes the concatenated attention and MLP
outputs; ``attn`` and ``proj_mlp`` feed only ``proj_out`` (see :mod:`ecad.schedule.pruning`). The transformer receives
the timestep divided by 1000 and latents packed in 2x2 patches: (H/16)*(W/16) image tokens of 64 channels.

The skip forwards always compute the adaLN-Zero projections (they give the gates) and leave out the norms and
modulations before replayed components; a single-stream block whose ``proj_out`` replays also leaves out the MLP
activation and the concatenation that only feed it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import (
    BlockSkip,
    BlockStep,
    add_into,
    class_is,
    context_feed_forward,
    gated_add_tokens,
    joint_adaln_zero,
    linear_modulation,
    modulate_tokens,
)

# black-forest-labs/FLUX.1-dev and FLUX.1-schnell, transformer/config.json (they differ only in guidance_embeds).
_FLUX_1 = {
    "_class_name": "FluxTransformer2DModel",
    "attention_head_dim": 128,
    "axes_dims_rope": [16, 56, 56],
    "in_channels": 64,
    "joint_attention_dim": 4096,
    "num_attention_heads": 24,
    "num_layers": 19,
    "num_single_layers": 38,
    "patch_size": 1,
    "pooled_projection_dim": 768,
}


def _clip_half(x: torch.Tensor) -> torch.Tensor:
    return x.clip(-65504, 65504) if x.dtype == torch.float16 else x


def _double_forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    temb: torch.Tensor,
    image_rotary_emb: Any = None,
    joint_attention_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``FluxTransformerBlock.forward`` computing each component's input only if it runs."""
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = linear_modulation(block.norm1, temb, 6)
    c_shift_msa, c_scale_msa, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = linear_modulation(
        block.norm1_context, temb, 6
    )
    if step.runs("attn"):
        outputs = step.compute(
            "attn",
            block.attn,
            hidden_states=modulate_tokens(block.norm1.norm(hidden_states), scale_msa, shift_msa),
            encoder_hidden_states=modulate_tokens(
                block.norm1_context.norm(encoder_hidden_states), c_scale_msa, c_shift_msa
            ),
            image_rotary_emb=image_rotary_emb,
            **(joint_attention_kwargs or {}),
        )
    else:
        outputs = step.replay("attn")
    attn_output, context_attn_output, *ip_output = outputs
    hidden_states = gated_add_tokens(gate_msa, attn_output, hidden_states)
    ff_output = (
        step.compute("ff", block.ff, modulate_tokens(block.norm2(hidden_states), scale_mlp, shift_mlp))
        if step.runs("ff")
        else step.replay("ff")
    )
    hidden_states = gated_add_tokens(gate_mlp, ff_output, hidden_states)
    if ip_output:
        hidden_states = add_into(hidden_states, ip_output[0])
    encoder_hidden_states = context_feed_forward(
        block, step, encoder_hidden_states, context_attn_output, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp
    )
    return _clip_half(encoder_hidden_states), hidden_states


def _single_forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    temb: torch.Tensor,
    image_rotary_emb: Any = None,
    joint_attention_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``FluxSingleTransformerBlock.forward`` computing each component's input only if it runs."""
    text_seq_len = encoder_hidden_states.shape[1]
    residual = torch.cat([encoder_hidden_states, hidden_states], dim=1)
    shift_msa, scale_msa, gate = linear_modulation(block.norm, temb, 3)
    runs_attn, runs_mlp, runs_out = step.runs("attn"), step.runs("proj_mlp"), step.runs("proj_out")
    if runs_attn or runs_mlp:
        normed = modulate_tokens(block.norm.norm(residual), scale_msa, shift_msa)
    mlp = step.compute("proj_mlp", block.proj_mlp, normed) if runs_mlp else None
    attn = (
        step.compute(
            "attn",
            block.attn,
            hidden_states=normed,
            image_rotary_emb=image_rotary_emb,
            **(joint_attention_kwargs or {}),
        )
        if runs_attn
        else None
    )
    if runs_out:
        mlp = block.act_mlp(mlp if runs_mlp else step.replay("proj_mlp"))
        attn = attn if runs_attn else step.replay("attn")
        output = step.compute("proj_out", block.proj_out, torch.cat([attn, mlp], dim=2))
    else:
        output = step.replay("proj_out")
    hidden_states = _clip_half(gated_add_tokens(gate, output, residual))
    return hidden_states[:, :text_seq_len], hidden_states[:, text_seq_len:]


class FluxAdapter(ModelAdapter):
    family = "flux"
    transformer_classes = ("FluxTransformer2DModel",)
    vae_factor = 16
    groups = (
        BlockGroup(
            "transformer_blocks",
            ("attn", "ff", "ff_context"),
            paper_names=("full_attn", "full_ff", "full_ff_context"),
            skip=BlockSkip(_double_forward, joint_adaln_zero("FluxTransformerBlock")),
        ),
        BlockGroup(
            "single_transformer_blocks",
            ("attn", "proj_mlp", "proj_out"),
            prefix="single_",
            paper_names=("single_attn", "single_proj_mlp", "single_proj_out"),
            feeds=(("attn", "proj_out"), ("proj_mlp", "proj_out")),
            skip=BlockSkip(_single_forward, class_is("FluxSingleTransformerBlock")),
        ),
    )
    default_text_len = 512
    timestep_scale = 1.0
    presets = {
        "flux-dev": ArchPreset("flux-dev", {**_FLUX_1, "guidance_embeds": True}, 512, "black-forest-labs/FLUX.1-dev"),
        # schnell's pipeline encodes at most 256 T5 tokens; the paper convention keeps FLUX's 512.
        "flux-schnell": ArchPreset(
            "flux-schnell",
            {**_FLUX_1, "guidance_embeds": False},
            256,
            "black-forest-labs/FLUX.1-schnell",
            paper_text_len=512,
        ),
    }

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        tokens = (height // 16) * (width // 16)
        inputs = {
            "hidden_states": torch.empty(batch_size, tokens, config["in_channels"], device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["joint_attention_dim"], device=device),
            "pooled_projections": torch.empty(batch_size, config["pooled_projection_dim"], device=device),
            "timestep": torch.empty(batch_size, device=device),
            "img_ids": torch.zeros(tokens, 3, device=device),
            "txt_ids": torch.zeros(text_len, 3, device=device),
        }
        if config.get("guidance_embeds"):
            inputs["guidance"] = torch.empty(batch_size, device=device)
        return inputs

    def encode_prompts(self, pipe: Any, prompts: list[str], guidance_scale: float) -> dict[str, torch.Tensor]:
        embeds, pooled, _ = pipe.encode_prompt(prompts, prompt_2=None, device=pipe._execution_device)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def decode_latents(self, pipe: Any, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return super().decode_latents(
            pipe, pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor), height, width
        )
