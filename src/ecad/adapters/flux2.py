"""FLUX.2 (``Flux2Transformer2DModel``): 8 double-stream blocks (attn, ff, ff_context) and 48 single-stream blocks.

A double-stream block's ``attn`` returns (image, text) together: one component, cached as the tuple. A single-stream
block is a parallel block: its ``attn`` fuses the attention's QKV with the MLP's input projection and the attention's
output projection with the MLP's output, so the whole block's work is one component. The modulations are computed
once per call outside the blocks; the skip forwards leave out the norms and modulations before replayed components.
Latents are packed in 2x2 patches of the 32-channel VAE: (H/16)*(W/16) tokens of 128 channels; the timestep arrives
divided by 1000.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import BlockSkip, BlockStep, class_is

# black-forest-labs/FLUX.2-dev, transformer/config.json: the defaults of Flux2Transformer2DModel, which
# scripts/convert_flux2_to_diffusers.py in huggingface/diffusers writes for the dev checkpoint.
_FLUX_2_DEV = {
    "_class_name": "Flux2Transformer2DModel",
    "attention_head_dim": 128,
    "axes_dims_rope": [32, 32, 32, 32],
    "eps": 1e-6,
    "guidance_embeds": True,
    "in_channels": 128,
    "joint_attention_dim": 15360,
    "mlp_ratio": 3.0,
    "num_attention_heads": 48,
    "num_layers": 8,
    "num_single_layers": 48,
    "out_channels": None,
    "patch_size": 1,
    "rope_theta": 2000,
    "timestep_guidance_channels": 256,
}


def _split(mod: torch.Tensor, sets: int) -> tuple[tuple[torch.Tensor, ...], ...]:
    """``Flux2Modulation.split``: ``sets`` (shift, scale, gate) triples."""
    chunks = torch.chunk(mod.unsqueeze(1) if mod.ndim == 2 else mod, 3 * sets, dim=-1)
    return tuple(chunks[3 * i : 3 * (i + 1)] for i in range(sets))


def _ff(
    block: nn.Module,
    step: BlockStep,
    name: str,
    norm: nn.Module,
    states: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    gate: torch.Tensor,
) -> torch.Tensor:
    output = (
        step.compute(name, getattr(block, name), norm(states) * (1 + scale) + shift)
        if step.runs(name)
        else step.replay(name)
    )
    return states + gate * output


def _double_forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    temb_mod_img: torch.Tensor,
    temb_mod_txt: torch.Tensor,
    image_rotary_emb: Any = None,
    joint_attention_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Flux2TransformerBlock.forward`` computing each component's input only if it runs."""
    (shift_msa, scale_msa, gate_msa), (shift_mlp, scale_mlp, gate_mlp) = _split(temb_mod_img, 2)
    (c_shift_msa, c_scale_msa, c_gate_msa), (c_shift_mlp, c_scale_mlp, c_gate_mlp) = _split(temb_mod_txt, 2)
    if step.runs("attn"):
        attn_output, context_attn_output = step.compute(
            "attn",
            block.attn,
            hidden_states=(1 + scale_msa) * block.norm1(hidden_states) + shift_msa,
            encoder_hidden_states=(1 + c_scale_msa) * block.norm1_context(encoder_hidden_states) + c_shift_msa,
            image_rotary_emb=image_rotary_emb,
            **(joint_attention_kwargs or {}),
        )
    else:
        attn_output, context_attn_output = step.replay("attn")
    hidden_states = hidden_states + gate_msa * attn_output
    hidden_states = _ff(block, step, "ff", block.norm2, hidden_states, shift_mlp, scale_mlp, gate_mlp)
    encoder_hidden_states = encoder_hidden_states + c_gate_msa * context_attn_output
    encoder_hidden_states = _ff(
        block, step, "ff_context", block.norm2_context, encoder_hidden_states, c_shift_mlp, c_scale_mlp, c_gate_mlp
    )
    if encoder_hidden_states.dtype == torch.float16:
        encoder_hidden_states = encoder_hidden_states.clip(-65504, 65504)
    return encoder_hidden_states, hidden_states


def _single_forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None,
    temb_mod: torch.Tensor,
    image_rotary_emb: Any = None,
    joint_attention_kwargs: dict[str, Any] | None = None,
    split_hidden_states: bool = False,
    text_seq_len: int | None = None,
) -> Any:
    """``Flux2SingleTransformerBlock.forward`` computing the fused attention's input only if it runs."""
    if encoder_hidden_states is not None:
        text_seq_len = encoder_hidden_states.shape[1]
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
    shift, scale, gate = _split(temb_mod, 1)[0]
    output = (
        step.compute(
            "attn",
            block.attn,
            hidden_states=(1 + scale) * block.norm(hidden_states) + shift,
            image_rotary_emb=image_rotary_emb,
            **(joint_attention_kwargs or {}),
        )
        if step.runs("attn")
        else step.replay("attn")
    )
    hidden_states = hidden_states + gate * output
    if hidden_states.dtype == torch.float16:
        hidden_states = hidden_states.clip(-65504, 65504)
    if split_hidden_states:
        return hidden_states[:, :text_seq_len], hidden_states[:, text_seq_len:]
    return hidden_states


class Flux2Adapter(ModelAdapter):
    family = "flux2"
    transformer_classes = ("Flux2Transformer2DModel",)
    vae_factor = 16
    groups = (
        BlockGroup(
            "transformer_blocks",
            ("attn", "ff", "ff_context"),
            skip=BlockSkip(_double_forward, class_is("Flux2TransformerBlock")),
        ),
        BlockGroup(
            "single_transformer_blocks",
            ("attn",),
            prefix="single_",
            skip=BlockSkip(_single_forward, class_is("Flux2SingleTransformerBlock")),
        ),
    )
    default_text_len = 512  # Flux2Pipeline's max_sequence_length
    timestep_scale = 1.0
    presets = {"flux2-dev": ArchPreset("flux2-dev", _FLUX_2_DEV, 512, "black-forest-labs/FLUX.2-dev")}

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        tokens = (height // 16) * (width // 16)
        axes = len(config["axes_dims_rope"])
        inputs = {
            "hidden_states": torch.empty(batch_size, tokens, config["in_channels"], device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["joint_attention_dim"], device=device),
            "timestep": torch.empty(batch_size, device=device),
            "img_ids": torch.zeros(batch_size, tokens, axes, device=device),
            "txt_ids": torch.zeros(batch_size, text_len, axes, device=device),
        }
        if config.get("guidance_embeds", True):
            inputs["guidance"] = torch.empty(batch_size, device=device)
        return inputs
