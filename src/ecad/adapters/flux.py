"""FLUX.1 (dev, schnell): 19 double-stream blocks (attn, ff, ff_context) and 38 single-stream blocks.

A double-stream block's ``attn`` returns (image, text) together: one component, cached as the tuple. A single-stream
block's ``proj_mlp`` is the MLP branch before its activation, ``proj_out`` mixes the concatenated attention and MLP
outputs; ``attn`` and ``proj_mlp`` feed only ``proj_out`` (see :mod:`ecad.pruning`). The transformer receives the
timestep divided by 1000 and latents packed in 2x2 patches: (H/16)*(W/16) image tokens of 64 channels.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import ArchPreset, BlockGroup, ModelAdapter

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


class FluxAdapter(ModelAdapter):
    family = "flux"
    transformer_classes = ("FluxTransformer2DModel",)
    groups = (
        BlockGroup("transformer_blocks", ("attn", "ff", "ff_context"),
                   paper_names=("full_attn", "full_ff", "full_ff_context")),
        BlockGroup("single_transformer_blocks", ("attn", "proj_mlp", "proj_out"), prefix="single_",
                   paper_names=("single_attn", "single_proj_mlp", "single_proj_out"),
                   feeds=(("attn", "proj_out"), ("proj_mlp", "proj_out"))),
    )
    default_text_len = 512
    timestep_scale = 1.0
    presets = {
        "flux-dev": ArchPreset("flux-dev", {**_FLUX_1, "guidance_embeds": True}, 512, "black-forest-labs/FLUX.1-dev"),
        # schnell's pipeline encodes at most 256 T5 tokens; the paper convention keeps FLUX's 512.
        "flux-schnell": ArchPreset("flux-schnell", {**_FLUX_1, "guidance_embeds": False}, 256,
                                   "black-forest-labs/FLUX.1-schnell", paper_text_len=512),
    }

    def pixel_multiple(self, config: dict[str, Any]) -> int:
        return 16 * int(config.get("patch_size") or 1)

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
        return super().decode_latents(pipe, pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor),
                                      height, width)
