"""Qwen-Image (``QwenImageTransformer2DModel``): 60 dual-stream blocks, joint attention and one MLP per stream.

``attn`` reads both streams' modulated ``*_norm1`` outputs and returns (image, text) together: one component, cached
as the tuple; ``img_mlp`` and ``txt_mlp`` read the modulated ``*_norm2`` outputs; all are gated. The skip forward
always computes both streams' modulation projections (they give the gates) and leaves out the norms and modulations
before replayed components. Latents are packed in 2x2 patches: (H/16)*(W/16) image tokens of 64 channels; the
timestep arrives divided by 1000.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import BlockSkip, BlockStep, class_is

# Qwen/Qwen-Image, transformer/config.json: the defaults of QwenImageTransformer2DModel in diffusers, which were set
# from it (docs/source/en/api/models/qwenimage_transformer2d.md loads that repo without overrides).
_QWEN_IMAGE = {
    "_class_name": "QwenImageTransformer2DModel",
    "attention_head_dim": 128,
    "axes_dims_rope": [16, 56, 56],
    "guidance_embeds": False,
    "in_channels": 64,
    "joint_attention_dim": 3584,
    "num_attention_heads": 24,
    "num_layers": 60,
    "out_channels": 16,
    "patch_size": 2,
}


def _gate(mod_params: torch.Tensor, index: Any) -> torch.Tensor:
    """The gate ``QwenImageTransformerBlock._modulate`` returns, without modulating anything."""
    _, _, gate = mod_params.chunk(3, dim=-1)
    if index is None:
        return gate.unsqueeze(1)
    half = gate.size(0) // 2
    return torch.where(index.unsqueeze(-1) == 0, gate[:half].unsqueeze(1), gate[half:].unsqueeze(1))


def _mlp(
    block: nn.Module, step: BlockStep, name: str, norm: nn.Module, states: torch.Tensor, mod: torch.Tensor, index: Any
) -> torch.Tensor:
    if step.runs(name):
        modulated, gate = block._modulate(norm(states), mod, index)
        output = step.compute(name, getattr(block, name), modulated)
    else:
        gate, output = _gate(mod, index), step.replay(name)
    return states + gate * output


def _forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    encoder_hidden_states_mask: torch.Tensor,
    temb: torch.Tensor,
    image_rotary_emb: Any = None,
    joint_attention_kwargs: dict[str, Any] | None = None,
    modulate_index: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``QwenImageTransformerBlock.forward`` computing each component's input only if it runs."""
    img_mod1, img_mod2 = block.img_mod(temb).chunk(2, dim=-1)
    if block.zero_cond_t:
        temb = torch.chunk(temb, 2, dim=0)[0]
    txt_mod1, txt_mod2 = block.txt_mod(temb).chunk(2, dim=-1)
    if step.runs("attn"):
        img_modulated, img_gate1 = block._modulate(block.img_norm1(hidden_states), img_mod1, modulate_index)
        txt_modulated, txt_gate1 = block._modulate(block.txt_norm1(encoder_hidden_states), txt_mod1)
        img_attn, txt_attn = step.compute(
            "attn",
            block.attn,
            hidden_states=img_modulated,
            encoder_hidden_states=txt_modulated,
            encoder_hidden_states_mask=encoder_hidden_states_mask,
            image_rotary_emb=image_rotary_emb,
            **(joint_attention_kwargs or {}),
        )
    else:
        img_gate1, txt_gate1 = _gate(img_mod1, modulate_index), _gate(txt_mod1, None)
        img_attn, txt_attn = step.replay("attn")
    hidden_states = hidden_states + img_gate1 * img_attn
    encoder_hidden_states = encoder_hidden_states + txt_gate1 * txt_attn
    hidden_states = _mlp(block, step, "img_mlp", block.img_norm2, hidden_states, img_mod2, modulate_index)
    encoder_hidden_states = _mlp(block, step, "txt_mlp", block.txt_norm2, encoder_hidden_states, txt_mod2, None)
    if encoder_hidden_states.dtype == torch.float16:
        encoder_hidden_states = encoder_hidden_states.clip(-65504, 65504)
    if hidden_states.dtype == torch.float16:
        hidden_states = hidden_states.clip(-65504, 65504)
    return encoder_hidden_states, hidden_states


class QwenImageAdapter(ModelAdapter):
    family = "qwen-image"
    transformer_classes = ("QwenImageTransformer2DModel",)
    groups = (
        BlockGroup(
            "transformer_blocks",
            ("attn", "img_mlp", "txt_mlp"),
            skip=BlockSkip(_forward, class_is("QwenImageTransformerBlock")),
        ),
    )
    default_text_len = 512  # QwenImagePipeline's max_sequence_length (the prompt's own length is used, up to it)
    timestep_scale = 1.0
    presets = {"qwen-image": ArchPreset("qwen-image", _QWEN_IMAGE, 512, "Qwen/Qwen-Image")}

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        rows, cols = height // 16, width // 16
        return {
            "hidden_states": torch.empty(batch_size, rows * cols, config["in_channels"], device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["joint_attention_dim"], device=device),
            "encoder_hidden_states_mask": torch.ones(batch_size, text_len, device=device),
            "timestep": torch.empty(batch_size, device=device),
            "img_shapes": [[(1, rows, cols)]] * batch_size,
        }
