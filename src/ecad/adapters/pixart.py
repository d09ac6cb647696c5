"""PixArt-alpha and PixArt-Sigma: 28 ``BasicTransformerBlock``s with self-attention, cross-attention and MLP.

``attn1`` reads the adaLN-modulated ``norm1`` output and is gated, ``attn2`` reads the residual stream and is added
ungated, ``ff`` reads the modulated ``norm2`` output and is gated; the skip forward leaves out a norm and its
modulation when the component it feeds replays.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import BlockSkip, BlockStep, cross_attention, gated_add, modulate, table_modulation

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


def _supports(block: nn.Module) -> bool:
    """The adaLN-single configuration PixArt uses (no positional embedding, GLIGEN or chunked feed-forward)."""
    return (
        type(block).__name__ == "BasicTransformerBlock"
        and block.norm_type == "ada_norm_single"
        and block.pos_embed is None
        and not block.only_cross_attention
        and block._chunk_size is None
        and not hasattr(block, "fuser")
    )


def _gated_residual(gate: torch.Tensor, output: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    hidden_states = gated_add(gate, output, residual)
    return hidden_states.squeeze(1) if hidden_states.ndim == 4 else hidden_states


def _forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
    encoder_attention_mask: torch.Tensor | None = None,
    timestep: torch.Tensor | None = None,
    cross_attention_kwargs: dict[str, Any] | None = None,
    class_labels: Any = None,
    added_cond_kwargs: Any = None,
) -> torch.Tensor:
    """``BasicTransformerBlock.forward`` (ada_norm_single) computing each component's input only if it runs."""
    kwargs = dict(cross_attention_kwargs or {})
    kwargs.pop("gligen", None)
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = table_modulation(
        block.scale_shift_table, timestep, hidden_states.shape[0]
    )
    if step.runs("attn1"):
        attn_input = modulate(block.norm1(hidden_states), scale_msa, shift_msa)
        output = step.compute(
            "attn1", block.attn1, attn_input, encoder_hidden_states=None, attention_mask=attention_mask, **kwargs
        )
    else:
        output = step.replay("attn1")
    hidden_states = _gated_residual(gate_msa, output, hidden_states)
    hidden_states = cross_attention(block, step, hidden_states, encoder_hidden_states, encoder_attention_mask, **kwargs)
    output = (
        step.compute("ff", block.ff, modulate(block.norm2(hidden_states), scale_mlp, shift_mlp))
        if step.runs("ff")
        else step.replay("ff")
    )
    return _gated_residual(gate_mlp, output, hidden_states)


class PixArtAdapter(ModelAdapter):
    family = "pixart"
    transformer_classes = ("PixArtTransformer2DModel",)
    groups = (BlockGroup("transformer_blocks", ("attn1", "attn2", "ff"), skip=BlockSkip(_forward, _supports)),)
    cross_attention = ("attn2",)
    # Binning would silently generate another size than the one asked for; caption cleaning needs bs4 and ftfy
    # and only warns without them.
    call_kwargs = {"use_resolution_binning": False, "clean_caption": False}
    presets = {
        "pixart-alpha": ArchPreset(
            "pixart-alpha",
            {**_PIXART_XL_2, "use_additional_conditions": False},
            120,
            "PixArt-alpha/PixArt-XL-2-256x256",
        ),
        "pixart-sigma": ArchPreset(
            "pixart-sigma",
            {**_PIXART_XL_2, "use_additional_conditions": False},
            300,
            "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
            paper_text_len=120,
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
            prompts,
            do_classifier_free_guidance=guidance_scale > 1.0,
            device=pipe._execution_device,
            clean_caption=False,
            max_sequence_length=self.max_sequence_length(pipe),
        )
        out = {"prompt_embeds": embeds, "prompt_attention_mask": mask}
        if negative is not None:
            out |= {"negative_prompt_embeds": negative, "negative_prompt_attention_mask": negative_mask}
        return out

    def pipeline_kwargs(self, pipe: Any) -> dict[str, Any]:
        return {**self.call_kwargs, "max_sequence_length": self.max_sequence_length(pipe)}

    def call_with_embeddings(self) -> dict[str, Any]:
        return {"negative_prompt": None}

    @staticmethod
    def max_sequence_length(pipe: Any) -> int:
        """The text length the pipeline pads to: Sigma 300, alpha 120, capped by the tokenizer's own limit."""
        default = 300 if type(pipe).__name__ == "PixArtSigmaPipeline" else 120
        return min(default, getattr(pipe.tokenizer, "model_max_length", default) or default)
