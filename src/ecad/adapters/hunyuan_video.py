"""HunyuanVideo 1.5 (``HunyuanVideo15Transformer3DModel``): 54 dual-stream blocks, joint attention and one MLP per
stream.

``attn`` reads both streams' adaLN-Zero-modulated ``norm1`` outputs and returns (video, text) together: one component,
cached as the tuple; ``ff`` and ``ff_context`` read the modulated ``norm2`` outputs; all are gated. The skip forward
always computes the adaLN-Zero projections (they give the gates) and leaves out the norms and modulations before
replayed components. The text refiner blocks before them run at every step. The transformer puts each row's valid
text tokens first by the values of their masks; counting on the meta device replaces that by a reorder of the same
shapes (:class:`AllTokensValid`). Latents: 32 channels, the VAE compresses
4x in time and 16x in space, no patching; the transformer reads the latents, a condition latent and a mask (65
channels).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import (
    BlockSkip,
    BlockStep,
    context_feed_forward,
    gated_add_tokens,
    joint_adaln_zero,
    linear_modulation,
    modulate_tokens,
)
from .wan import latent_frames

# hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_t2v, transformer/config.json: written by
# scripts/convert_hunyuan_video1_5_to_diffusers.py in huggingface/diffusers (the class defaults with the t2v task and
# the 720p target size; the 480p variants differ only in target_size, which no layer depends on).
_HUNYUAN_VIDEO_15 = {
    "_class_name": "HunyuanVideo15Transformer3DModel",
    "attention_head_dim": 128,
    "image_embed_dim": 1152,
    "in_channels": 65,
    "mlp_ratio": 4.0,
    "num_attention_heads": 16,
    "num_layers": 54,
    "num_refiner_layers": 2,
    "out_channels": 32,
    "patch_size": 1,
    "patch_size_t": 1,
    "qk_norm": "rms_norm",
    "rope_axes_dim": [16, 56, 56],
    "rope_theta": 256.0,
    "target_size": 720,
    "task_type": "t2v",
    "text_embed_2_dim": 1472,
    "text_embed_dim": 3584,
    "use_meanflow": False,
}
_BYT5_TOKENS = 256  # HunyuanVideo15Pipeline's glyph (ByT5) text length
_IMAGE_TOKENS = 729  # the SigLIP image tokens the pipeline passes (zeros for text-to-video)


def _forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    temb: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    freqs_cis: Any = None,
    *args: Any,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``HunyuanVideo15TransformerBlock.forward`` computing each component's input only if it runs."""
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = linear_modulation(block.norm1, temb, 6)
    c_shift_msa, c_scale_msa, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = linear_modulation(
        block.norm1_context, temb, 6
    )
    if step.runs("attn"):
        attn_output, context_attn_output = step.compute(
            "attn",
            block.attn,
            hidden_states=modulate_tokens(block.norm1.norm(hidden_states), scale_msa, shift_msa),
            encoder_hidden_states=modulate_tokens(
                block.norm1_context.norm(encoder_hidden_states), c_scale_msa, c_shift_msa
            ),
            attention_mask=attention_mask,
            image_rotary_emb=freqs_cis,
        )
    else:
        attn_output, context_attn_output = step.replay("attn")
    hidden_states = gated_add_tokens(gate_msa, attn_output, hidden_states)
    output = (
        step.compute("ff", block.ff, modulate_tokens(block.norm2(hidden_states), scale_mlp, shift_mlp))
        if step.runs("ff")
        else step.replay("ff")
    )
    hidden_states = gated_add_tokens(gate_mlp, output, hidden_states)
    return hidden_states, context_feed_forward(
        block, step, encoder_hidden_states, context_attn_output, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp
    )


class AllTokensValid(TorchFunctionMode):
    """``HunyuanVideo15Transformer3DModel.forward`` on the meta device, whose masks have shapes but no values.

    The forward moves each row's valid tokens first (``text[mask]``, then ``text[~mask]``, for the image, ByT5 and
    prompt tokens) and tests ``torch.all(image_embeds == 0)`` for text-to-video; the meta device can do neither. Under
    this mode a boolean mask on the meta device selects every token, its negation none, and a truth test reads true.
    Each row keeps its length, so the blocks see the shapes of the real call and every matrix product is the same:
    only which tokens are padding differs, which moves no multiply-accumulate.
    """

    def __init__(self) -> None:
        super().__init__()
        self._negated: dict[int, torch.Tensor] = {}  # holding the tensors keeps their ids unique while the mode runs

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.Tensor.__bool__ and args[0].is_meta:
            return True
        if func is torch.Tensor.__invert__ and args[0].is_meta and args[0].dtype == torch.bool:
            negated = func(*args, **kwargs)
            if id(args[0]) not in self._negated:
                self._negated[id(negated)] = negated
            return negated
        index = args[1] if func is torch.Tensor.__getitem__ else None
        if isinstance(index, torch.Tensor) and index.is_meta and index.dtype == torch.bool:
            rows = args[0].flatten(0, index.dim() - 1)
            return rows[:0] if id(index) in self._negated else rows
        return func(*args, **kwargs)


class HunyuanVideo15Adapter(ModelAdapter):
    family = "hunyuan-video-1.5"
    transformer_classes = ("HunyuanVideo15Transformer3DModel",)
    vae_factor = 16
    groups = (
        BlockGroup(
            "transformer_blocks",
            ("attn", "ff", "ff_context"),
            skip=BlockSkip(_forward, joint_adaln_zero("HunyuanVideo15TransformerBlock")),
        ),
    )
    default_text_len = 1000  # HunyuanVideo15Pipeline's tokenizer_max_length (the Qwen2.5-VL prompt tokens)
    default_frames = 121
    presets = {
        "hunyuanvideo-1.5": ArchPreset(
            "hunyuanvideo-1.5", _HUNYUAN_VIDEO_15, 1000, "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_t2v"
        )
    }

    def counting_context(self) -> AllTokensValid:
        return AllTokensValid()

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
                batch_size, config["in_channels"], latent_frames(frames, 4), height // 16, width // 16, device=device
            ),
            "timestep": torch.empty(batch_size, device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["text_embed_dim"], device=device),
            "encoder_attention_mask": torch.ones(batch_size, text_len, device=device),
            "encoder_hidden_states_2": torch.empty(batch_size, _BYT5_TOKENS, config["text_embed_2_dim"], device=device),
            "encoder_attention_mask_2": torch.ones(batch_size, _BYT5_TOKENS, device=device),
            "image_embeds": torch.zeros(batch_size, _IMAGE_TOKENS, config["image_embed_dim"], device=device),
        }
