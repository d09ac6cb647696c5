"""Stable Diffusion 3 / 3.5: ``JointTransformerBlock``s with attn, attn2 (dual-attention blocks only), ff, ff_context.

The last block is context-pre-only and has no ``ff_context``; SD3.5-medium's first 13 blocks add ``attn2``. The
pairs a model lacks are ``False`` in the schedule's ``exists`` mask: they cost nothing and never run.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import ArchPreset, BlockGroup, ModelAdapter

# stabilityai/stable-diffusion-3-medium-diffusers, transformer/config.json
_SD3_MEDIUM = {
    "_class_name": "SD3Transformer2DModel",
    "attention_head_dim": 64,
    "caption_projection_dim": 1536,
    "in_channels": 16,
    "joint_attention_dim": 4096,
    "num_attention_heads": 24,
    "num_layers": 24,
    "out_channels": 16,
    "patch_size": 2,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 192,
    "sample_size": 128,
}
# stabilityai/stable-diffusion-3.5-large and -3.5-medium, transformer/config.json
_SD35_LARGE = {**_SD3_MEDIUM, "caption_projection_dim": 2432, "num_attention_heads": 38, "num_layers": 38,
               "qk_norm": "rms_norm"}
_SD35_MEDIUM = {**_SD3_MEDIUM, "pos_embed_max_size": 384, "qk_norm": "rms_norm",
                "dual_attention_layers": list(range(13))}

# CLIP-L/G (77 tokens) concatenated with T5 (the pipeline's max_sequence_length default, 256).
_TEXT_LEN = 77 + 256


class SD3Adapter(ModelAdapter):
    family = "sd3"
    transformer_classes = ("SD3Transformer2DModel",)
    groups = (BlockGroup("transformer_blocks", ("attn", "attn2", "ff", "ff_context")),)
    default_text_len = _TEXT_LEN
    presets = {
        "sd3-medium": ArchPreset("sd3-medium", _SD3_MEDIUM, _TEXT_LEN, "stabilityai/stable-diffusion-3-medium-diffusers"),
        "sd3.5-medium": ArchPreset("sd3.5-medium", _SD35_MEDIUM, _TEXT_LEN, "stabilityai/stable-diffusion-3.5-medium"),
        "sd3.5-large": ArchPreset("sd3.5-large", _SD35_LARGE, _TEXT_LEN, "stabilityai/stable-diffusion-3.5-large"),
    }

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        return {
            "hidden_states": torch.empty(batch_size, config["in_channels"], height // 8, width // 8, device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["joint_attention_dim"], device=device),
            "pooled_projections": torch.empty(batch_size, config["pooled_projection_dim"], device=device),
            "timestep": torch.empty(batch_size, device=device),
        }

    def encode_prompts(self, pipe: Any, prompts: list[str], guidance_scale: float) -> dict[str, torch.Tensor]:
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
            prompts, prompt_2=None, prompt_3=None, device=pipe._execution_device,
            do_classifier_free_guidance=guidance_scale > 1.0,
        )
        out = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if negative is not None:
            out |= {"negative_prompt_embeds": negative, "negative_pooled_prompt_embeds": negative_pooled}
        return out
