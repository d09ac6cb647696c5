"""Stable Diffusion 3 / 3.5: ``JointTransformerBlock``s with attn, attn2 (dual-attention blocks only), ff, ff_context.

The last block is context-pre-only and has no ``ff_context``; SD3.5-medium's first 13 blocks add ``attn2``. The
pairs a model lacks are ``False`` in the schedule's ``exists`` mask: they cost nothing and never run.

The skip forward always computes the adaLN-Zero projections (they give the gates) and leaves out the norms and
modulations before replayed components; in the context-pre-only block the whole context norm (projection included)
feeds only ``attn``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import (
    BlockSkip,
    BlockStep,
    class_is,
    context_feed_forward,
    gated_add_tokens,
    linear_modulation,
    modulate_tokens,
)

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
_SD35_LARGE = {
    **_SD3_MEDIUM,
    "caption_projection_dim": 2432,
    "num_attention_heads": 38,
    "num_layers": 38,
    "qk_norm": "rms_norm",
}
_SD35_MEDIUM = {
    **_SD3_MEDIUM,
    "pos_embed_max_size": 384,
    "qk_norm": "rms_norm",
    "dual_attention_layers": list(range(13)),
}

# CLIP-L/G (77 tokens) concatenated with T5 (the pipeline's max_sequence_length default, 256).
_TEXT_LEN = 77 + 256


def _forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    temb: torch.Tensor,
    joint_attention_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``JointTransformerBlock.forward`` computing each component's input only if it runs."""
    kwargs = joint_attention_kwargs or {}
    runs_attn = step.runs("attn")
    dual = block.use_dual_attention
    runs_attn2 = dual and step.runs("attn2")
    if dual:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp, shift_msa2, scale_msa2, gate_msa2 = (
            linear_modulation(block.norm1, temb, 9)
        )
    else:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = linear_modulation(block.norm1, temb, 6)
    if runs_attn or runs_attn2:
        normed = block.norm1.norm(hidden_states)
    if not block.context_pre_only:
        c_shift_msa, c_scale_msa, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = linear_modulation(
            block.norm1_context, temb, 6
        )
    if runs_attn:
        if block.context_pre_only:
            context_input = block.norm1_context(encoder_hidden_states, temb)
        else:
            context_input = modulate_tokens(block.norm1_context.norm(encoder_hidden_states), c_scale_msa, c_shift_msa)
        attn_output, context_attn_output = step.compute(
            "attn",
            block.attn,
            hidden_states=modulate_tokens(normed, scale_msa, shift_msa),
            encoder_hidden_states=context_input,
            **kwargs,
        )
    else:
        attn_output, context_attn_output = step.replay("attn")
    hidden_states = gated_add_tokens(gate_msa, attn_output, hidden_states)
    if dual:
        output = (
            step.compute("attn2", block.attn2, hidden_states=modulate_tokens(normed, scale_msa2, shift_msa2), **kwargs)
            if runs_attn2
            else step.replay("attn2")
        )
        hidden_states = gated_add_tokens(gate_msa2, output, hidden_states)
    ff_output = (
        step.compute("ff", block.ff, modulate_tokens(block.norm2(hidden_states), scale_mlp, shift_mlp))
        if step.runs("ff")
        else step.replay("ff")
    )
    hidden_states = gated_add_tokens(gate_mlp, ff_output, hidden_states)
    if block.context_pre_only:
        return None, hidden_states
    return context_feed_forward(
        block, step, encoder_hidden_states, context_attn_output, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp
    ), hidden_states


def _supports(block: nn.Module) -> bool:
    """Adaptive norms without label embeddings, no chunked feed-forward (what SD3 and SD3.5 build)."""
    norms = (block.norm1,) if block.context_pre_only else (block.norm1, block.norm1_context)
    return (
        type(block).__name__ == "JointTransformerBlock"
        and block._chunk_size is None
        and class_is("AdaLayerNormZero", "SD35AdaLayerNormZeroX")(block.norm1)
        and all(getattr(norm, "emb", None) is None for norm in norms)
        and (not block.context_pre_only or class_is("AdaLayerNormContinuous")(block.norm1_context))
    )


class SD3Adapter(ModelAdapter):
    family = "sd3"
    transformer_classes = ("SD3Transformer2DModel",)
    groups = (
        BlockGroup("transformer_blocks", ("attn", "attn2", "ff", "ff_context"), skip=BlockSkip(_forward, _supports)),
    )
    default_text_len = _TEXT_LEN
    presets = {
        "sd3-medium": ArchPreset(
            "sd3-medium", _SD3_MEDIUM, _TEXT_LEN, "stabilityai/stable-diffusion-3-medium-diffusers"
        ),
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
            prompts,
            prompt_2=None,
            prompt_3=None,
            device=pipe._execution_device,
            do_classifier_free_guidance=guidance_scale > 1.0,
        )
        out = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if negative is not None:
            out |= {"negative_prompt_embeds": negative, "negative_pooled_prompt_embeds": negative_pooled}
        return out
