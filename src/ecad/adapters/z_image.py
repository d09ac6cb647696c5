"""Z-Image (``ZImageTransformer2DModel``): 30 single-stream ``layers`` over the joined image and text tokens.

Each block's ``attention`` reads the ``attention_norm1`` output scaled by the modulation, and its output passes
``attention_norm2`` before the tanh gate; ``feed_forward`` likewise between ``ffn_norm1`` and ``ffn_norm2``. The cached
output is the module's own, before the post-norm and the gate. The two noise-refiner and two context-refiner blocks
before the main layers run at every step. The transformer takes lists of per-image latents (``x``) and caption
features, and a timestep ``t`` that rises from 0 to 1 over the denoising; ecad reads the batch from ``t``. Latents: 16
channels, 8x VAE, 2x2 patches: (H/16)*(W/16) image tokens.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.transformers.transformer_z_image import select_per_token
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import BlockSkip, BlockStep

# Tongyi-MAI/Z-Image-Turbo, transformer/config.json: the defaults of ZImageTransformer2DModel, which
# scripts/convert_z_image_to_diffusers.py in huggingface/diffusers writes (inferred from the class).
_Z_IMAGE_TURBO = {
    "_class_name": "ZImageTransformer2DModel",
    "all_f_patch_size": [1],
    "all_patch_size": [2],
    "axes_dims": [32, 48, 48],
    "axes_lens": [1024, 512, 512],
    "cap_feat_dim": 2560,
    "dim": 3840,
    "in_channels": 16,
    "n_heads": 30,
    "n_kv_heads": 30,
    "n_layers": 30,
    "n_refiner_layers": 2,
    "norm_eps": 1e-5,
    "qk_norm": True,
    "rope_theta": 256.0,
    "t_scale": 1000.0,
}


def _modulation(chunks: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """(scale_msa, gate_msa, scale_mlp, gate_mlp) from the block's four chunks: gates through tanh, scales plus 1."""
    scale_msa, gate_msa, scale_mlp, gate_mlp = chunks
    return 1.0 + scale_msa, gate_msa.tanh(), 1.0 + scale_mlp, gate_mlp.tanh()


def _forward(
    block: nn.Module,
    step: BlockStep,
    x: torch.Tensor,
    attn_mask: torch.Tensor,
    freqs_cis: torch.Tensor,
    adaln_input: torch.Tensor | None = None,
    noise_mask: Any = None,
    adaln_noisy: Any = None,
    adaln_clean: Any = None,
) -> torch.Tensor:
    """``ZImageTransformerBlock.forward`` (modulated blocks) computing each component's input only if it runs."""
    if noise_mask is not None:  # per-token modulation of noisy and clean tokens (Z-Image Omni)
        noisy, clean = (_modulation(block.adaLN_modulation(a).chunk(4, dim=1)) for a in (adaln_noisy, adaln_clean))
        scale_msa, gate_msa, scale_mlp, gate_mlp = (
            select_per_token(n, c, noise_mask, x.shape[1]) for n, c in zip(noisy, clean, strict=True)
        )
    else:
        scale_msa, gate_msa, scale_mlp, gate_mlp = _modulation(
            block.adaLN_modulation(adaln_input).unsqueeze(1).chunk(4, dim=2)
        )
    output = (
        step.compute(
            "attention",
            block.attention,
            block.attention_norm1(x) * scale_msa,
            attention_mask=attn_mask,
            freqs_cis=freqs_cis,
        )
        if step.runs("attention")
        else step.replay("attention")
    )
    x = x + gate_msa * block.attention_norm2(output)
    output = (
        step.compute("feed_forward", block.feed_forward, block.ffn_norm1(x) * scale_mlp)
        if step.runs("feed_forward")
        else step.replay("feed_forward")
    )
    return x + gate_mlp * block.ffn_norm2(output)


def _supports(block: nn.Module) -> bool:
    """Blocks with adaLN modulation, as Z-Image's main layers (its context refiner has none)."""
    return type(block).__name__ == "ZImageTransformerBlock" and block.modulation


class ZImageAdapter(ModelAdapter):
    family = "z-image"
    transformer_classes = ("ZImageTransformer2DModel",)
    groups = (BlockGroup("layers", ("attention", "feed_forward"), skip=BlockSkip(_forward, _supports)),)
    timestep_arg = "t"
    sample_arg = "t"  # x is a list of per-image latents; the timestep has one row per image
    text_arg = "cap_feats"
    timestep_scale = 1.0
    default_text_len = 512  # ZImagePipeline's max_sequence_length
    presets = {"z-image-turbo": ArchPreset("z-image-turbo", _Z_IMAGE_TURBO, 512, "Tongyi-MAI/Z-Image-Turbo")}

    def pixel_multiple(self, config: dict[str, Any]) -> int:
        return 8 * int(config["all_patch_size"][0])

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        return {
            "x": [torch.empty(config["in_channels"], 1, height // 8, width // 8, device=device)] * batch_size,
            "t": torch.empty(batch_size, device=device),
            "cap_feats": [torch.empty(text_len, config["cap_feat_dim"], device=device)] * batch_size,
        }
