"""PixArt-alpha and PixArt-Sigma: 28 ``BasicTransformerBlock``s with self-attention, cross-attention and MLP."""

from __future__ import annotations

from typing import Any

import torch

from .base import ArchPreset, BlockGroup, ModelAdapter

_PIXART_XL_2 = {
    "_class_name": "PixArtTransformer2DModel",
    "num_attention_heads": 16,
    "attention_head_dim": 72,
    "in_channels": 4,
    "out_channels": 8,
    "num_layers": 28,
    "dropout": 0.0,
    "norm_num_groups": 32,
    "cross_attention_dim": 1152,
    "attention_bias": True,
    "sample_size": 32,
    "patch_size": 2,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "upcast_attention": False,
    "norm_type": "ada_norm_single",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "caption_channels": 4096,
}


class PixArtAdapter(ModelAdapter):
    family = "pixart"
    transformer_classes = ("PixArtTransformer2DModel",)
    groups = (BlockGroup("transformer_blocks", ("attn1", "attn2", "ff")),)
    cross_attention = ("attn2",)
    # Binning would silently generate another size than the one asked for; caption cleaning needs bs4 and ftfy
    # and only warns without them.
    call_kwargs = {"use_resolution_binning": False, "clean_caption": False}
    presets = {
        "pixart-alpha": ArchPreset(
            "pixart-alpha", {**_PIXART_XL_2, "use_additional_conditions": False}, 120,
            "PixArt-alpha/PixArt-XL-2-256x256",
        ),
        "pixart-sigma": ArchPreset(
            "pixart-sigma", {**_PIXART_XL_2, "use_additional_conditions": False}, 300,
            "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS", paper_text_len=120,
        ),
    }

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        latent = (height // 8, width // 8)
        added = {"resolution": None, "aspect_ratio": None}
        if config.get("use_additional_conditions") or (
            config.get("use_additional_conditions") is None and config.get("sample_size") == 128
        ):
            added = {
                "resolution": torch.empty(batch_size, 2, device=device),
                "aspect_ratio": torch.empty(batch_size, 1, device=device),
            }
        return {
            "hidden_states": torch.empty(batch_size, config["in_channels"], *latent, device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["caption_channels"], device=device),
            "timestep": torch.empty(batch_size, device=device),
            "added_cond_kwargs": added,
        }

    def encode_prompts(self, pipe: Any, prompts: list[str], guidance_scale: float) -> dict[str, torch.Tensor]:
        embeds, mask, negative, negative_mask = pipe.encode_prompt(
            prompts, do_classifier_free_guidance=guidance_scale > 1.0, device=pipe._execution_device,
            clean_caption=False, max_sequence_length=self.max_sequence_length(pipe),
        )
        out = {"prompt_embeds": embeds, "prompt_attention_mask": mask}
        if negative is not None:
            out |= {"negative_prompt_embeds": negative, "negative_prompt_attention_mask": negative_mask}
        return out

    def call_with_embeddings(self) -> dict[str, Any]:
        return {"negative_prompt": None}

    @staticmethod
    def max_sequence_length(pipe: Any) -> int:
        """The text length the pipeline pads to: Sigma 300, alpha 120, capped by the tokenizer's own limit."""
        default = 300 if type(pipe).__name__ == "PixArtSigmaPipeline" else 120
        return min(default, getattr(pipe.tokenizer, "model_max_length", default) or default)
