"""Wan 2.1 and 2.2 (``WanTransformer3DModel``): ``blocks`` of self-attention, cross-attention and feed-forward.

``attn1`` reads the modulated ``norm1`` output and is gated, ``attn2`` reads ``norm2`` of the residual (no
modulation) and is added ungated, ``ffn`` reads the modulated ``norm3`` output and is gated; the residual is kept in
float32 between them. Wan 2.2 A14B runs two such transformers (``transformer`` for high noise, ``transformer_2`` for
low noise) under one schedule of the whole trajectory: :mod:`ecad.runtime.experts`. Latents: 16 channels, the VAE
compresses 4x in time and 8x in space, and the transformer patches 2x2, so a video of F frames at H x W gives
((F - 1) / 4 + 1) * (H / 16) * (W / 16) tokens.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import BlockSkip, BlockStep, class_is

# scripts/convert_wan_to_diffusers.py in huggingface/diffusers ("Wan-T2V-1.3B" / "Wan-T2V-14B"), the configs of
# Wan-AI/Wan2.1-T2V-1.3B-Diffusers and -14B-Diffusers; Wan-AI/Wan2.2-T2V-A14B-Diffusers' two experts use the 14B one.
_WAN = {
    "_class_name": "WanTransformer3DModel",
    "added_kv_proj_dim": None,
    "attention_head_dim": 128,
    "cross_attn_norm": True,
    "eps": 1e-6,
    "freq_dim": 256,
    "image_dim": None,
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": [1, 2, 2],
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024,
    "text_dim": 4096,
}
_WAN_1_3B = {**_WAN, "ffn_dim": 8960, "num_attention_heads": 12, "num_layers": 30}
_WAN_14B = {**_WAN, "ffn_dim": 13824, "num_attention_heads": 40, "num_layers": 40}


def _forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    temb: torch.Tensor,
    rotary_emb: torch.Tensor,
) -> torch.Tensor:
    """``WanTransformerBlock.forward`` computing each component's input only if it runs."""
    if temb.ndim == 4:  # per-token modulation (Wan 2.2 TI2V 5B)
        chunks = [c.squeeze(2) for c in (block.scale_shift_table.unsqueeze(0) + temb.float()).chunk(6, dim=2)]
    else:
        chunks = (block.scale_shift_table + temb.float()).chunk(6, dim=1)
    shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = chunks
    if step.runs("attn1"):
        norm = (block.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa).type_as(hidden_states)
        output = step.compute("attn1", block.attn1, norm, None, None, rotary_emb)
    else:
        output = step.replay("attn1")
    hidden_states = (hidden_states.float() + output * gate_msa).type_as(hidden_states)
    if step.runs("attn2"):
        norm = block.norm2(hidden_states.float()).type_as(hidden_states)
        output = step.compute("attn2", block.attn2, norm, encoder_hidden_states, None, None)
    else:
        output = step.replay("attn2")
    hidden_states = hidden_states + output
    if step.runs("ffn"):
        norm = (block.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(hidden_states)
        output = step.compute("ffn", block.ffn, norm)
    else:
        output = step.replay("ffn")
    return (hidden_states.float() + output.float() * c_gate_msa).type_as(hidden_states)


def latent_frames(frames: int, temporal: int) -> int:
    """Latent frames of a video of ``frames`` frames under a causal VAE compressing ``temporal``x in time."""
    return (frames - 1) // temporal + 1


class WanAdapter(ModelAdapter):
    family = "wan"
    transformer_classes = ("WanTransformer3DModel",)
    groups = (
        BlockGroup("blocks", ("attn1", "attn2", "ffn"), skip=BlockSkip(_forward, class_is("WanTransformerBlock"))),
    )
    cross_attention = ("attn2",)
    default_text_len = 512  # WanPipeline's max_sequence_length
    default_frames = 81
    presets = {
        "wan2.1-t2v-1.3b": ArchPreset("wan2.1-t2v-1.3b", _WAN_1_3B, 512, "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"),
        "wan2.1-t2v-14b": ArchPreset("wan2.1-t2v-14b", _WAN_14B, 512, "Wan-AI/Wan2.1-T2V-14B-Diffusers"),
        "wan2.2-t2v-a14b": ArchPreset("wan2.2-t2v-a14b", _WAN_14B, 512, "Wan-AI/Wan2.2-T2V-A14B-Diffusers"),
    }

    def pixel_multiple(self, config: dict[str, Any]) -> int:
        return 8 * int(config["patch_size"][-1])

    def dummy_inputs(
        self,
        config: Any,
        batch_size: int,
        height: int,
        width: int,
        text_len: int,
        device: torch.device | str,
        frames: int = 1,
    ) -> dict[str, Any]:
        return {
            "hidden_states": torch.empty(
                batch_size, config["in_channels"], latent_frames(frames, 4), height // 8, width // 8, device=device
            ),
            "timestep": torch.empty(batch_size, device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["text_dim"], device=device),
        }
