"""Sana: ``SanaTransformerBlock``s with linear self-attention, cross-attention and a GLU conv MLP (DC-AE, 32x)."""

from __future__ import annotations

from typing import Any

import torch

from .base import ArchPreset, BlockGroup, ModelAdapter

# Efficient-Large-Model/Sana_1600M_1024px_diffusers, transformer/config.json
_SANA_1600M = {
    "_class_name": "SanaTransformer2DModel", "attention_bias": False, "attention_head_dim": 32,
    "caption_channels": 2304, "cross_attention_dim": 2240, "cross_attention_head_dim": 112, "dropout": 0.0,
    "in_channels": 32, "mlp_ratio": 2.5, "norm_elementwise_affine": False, "norm_eps": 1e-6,
    "num_attention_heads": 70, "num_cross_attention_heads": 20, "num_layers": 20, "out_channels": 32,
    "patch_size": 1, "sample_size": 32,
}


class SanaAdapter(ModelAdapter):
    family = "sana"
    transformer_classes = ("SanaTransformer2DModel",)
    groups = (BlockGroup("transformer_blocks", ("attn1", "attn2", "ff")),)
    cross_attention = ("attn2",)
    default_text_len = 300  # SanaPipeline's max_sequence_length
    call_kwargs = {"use_resolution_binning": False}
    presets = {"sana-1600m": ArchPreset("sana-1600m", _SANA_1600M, 300, "Efficient-Large-Model/Sana_1600M_1024px_diffusers")}

    def pixel_multiple(self, config: dict[str, Any]) -> int:
        return 32 * int(config.get("patch_size") or 1)  # the DC-AE downsamples 32x

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        return {
            "hidden_states": torch.empty(batch_size, config["in_channels"], height // 32, width // 32, device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["caption_channels"], device=device),
            "timestep": torch.empty(batch_size, device=device),
        }
