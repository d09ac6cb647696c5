"""LTX-2 (``LTX2VideoTransformer3DModel``): 48 audio-video blocks.

Each block has a video and an audio stream: self-attention (``attn1``, ``audio_attn1``), cross-attention to the text
(``attn2``, ``audio_attn2``), attention between the streams (``audio_to_video_attn``, ``video_to_audio_attn``) and a
feed-forward per stream (``ff``, ``audio_ff``): eight components, each cached as the module's own output before its
gate. The skip forward (LTX-2.0's blocks: no prompt modulation of the cross-attention, no perturbed attention)
leaves out the norm and modulation before a replayed component; the two cross-modal attentions share their norms,
computed when either runs. Video latents: 128 channels, the VAE compresses 8x in time and 32x in space, no patching;
audio latents: 128 channels per frame of 40 ms (16 kHz, hop 160, 4x).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter
from .skip import BlockSkip, BlockStep
from .wan import latent_frames

# Lightricks/LTX-2, the diffusers transformer config: the defaults of LTX2VideoTransformer3DModel, which
# scripts/convert_ltx2_to_diffusers.py in huggingface/diffusers writes for the LTX-2.0 checkpoint (inferred from the
# class, not read from the hub file).
_LTX_2 = {
    "_class_name": "LTX2VideoTransformer3DModel",
    "activation_fn": "gelu-approximate",
    "attention_head_dim": 128,
    "audio_attention_head_dim": 64,
    "audio_cross_attention_dim": 2048,
    "audio_in_channels": 128,
    "audio_num_attention_heads": 32,
    "audio_out_channels": 128,
    "caption_channels": 3840,
    "cross_attention_dim": 4096,
    "in_channels": 128,
    "num_attention_heads": 32,
    "num_layers": 48,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
}
_FPS = 24.0
_AUDIO_LATENTS_PER_SECOND = 16000 / 160 / 4  # LTX2Pipeline: sampling rate / hop length / audio VAE compression


def _self_attention(
    block: nn.Module,
    step: BlockStep,
    name: str,
    norm: nn.Module,
    states: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    gate: torch.Tensor,
    rotary_emb: Any,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    output = (
        step.compute(
            name,
            getattr(block, name),
            hidden_states=norm(states) * (1 + scale) + shift,
            encoder_hidden_states=None,
            query_rotary_emb=rotary_emb,
            attention_mask=mask,
        )
        if step.runs(name)
        else step.replay(name)
    )
    return states + output * gate


def _text_attention(
    block: nn.Module,
    step: BlockStep,
    name: str,
    norm: nn.Module,
    states: torch.Tensor,
    context: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    output = (
        step.compute(
            name,
            getattr(block, name),
            norm(states),
            encoder_hidden_states=context,
            query_rotary_emb=None,
            attention_mask=mask,
        )
        if step.runs(name)
        else step.replay(name)
    )
    return states + output


def _cross_modal(
    block: nn.Module,
    step: BlockStep,
    name: str,
    query: torch.Tensor,
    query_mod: tuple[torch.Tensor, ...],
    keys: torch.Tensor,
    keys_mod: tuple[torch.Tensor, ...],
    rotary: tuple[Any, Any],
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """One of the a2v/v2a attentions on the shared normed streams, each modulated by its (scale, shift)."""
    if not step.runs(name):
        return step.replay(name)
    return step.compute(
        name,
        getattr(block, name),
        query * (1 + query_mod[0].squeeze(2)) + query_mod[1].squeeze(2),
        encoder_hidden_states=keys * (1 + keys_mod[0].squeeze(2)) + keys_mod[1].squeeze(2),
        query_rotary_emb=rotary[0],
        key_rotary_emb=rotary[1],
        attention_mask=mask,
    )


def _forward(
    block: nn.Module,
    step: BlockStep,
    hidden_states: torch.Tensor,
    audio_hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    audio_encoder_hidden_states: torch.Tensor,
    temb: torch.Tensor,
    temb_audio: torch.Tensor,
    temb_ca_scale_shift: torch.Tensor,
    temb_ca_audio_scale_shift: torch.Tensor,
    temb_ca_gate: torch.Tensor,
    temb_ca_audio_gate: torch.Tensor,
    temb_prompt: Any = None,
    temb_prompt_audio: Any = None,
    video_rotary_emb: Any = None,
    audio_rotary_emb: Any = None,
    ca_video_rotary_emb: Any = None,
    ca_audio_rotary_emb: Any = None,
    encoder_attention_mask: Any = None,
    audio_encoder_attention_mask: Any = None,
    self_attention_mask: Any = None,
    audio_self_attention_mask: Any = None,
    a2v_cross_attention_mask: Any = None,
    v2a_cross_attention_mask: Any = None,
    use_a2v_cross_attention: bool = True,
    use_v2a_cross_attention: bool = True,
    perturbation_mask: Any = None,
    all_perturbed: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``LTX2VideoTransformerBlock.forward`` (LTX-2.0 blocks) computing each component's input only if it runs."""
    batch_size = hidden_states.size(0)
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = block.get_mod_params(
        block.scale_shift_table, temb, batch_size
    )[:6]
    hidden_states = _self_attention(
        block,
        step,
        "attn1",
        block.norm1,
        hidden_states,
        scale_msa,
        shift_msa,
        gate_msa,
        video_rotary_emb,
        self_attention_mask,
    )
    a_shift_msa, a_scale_msa, a_gate_msa, a_shift_mlp, a_scale_mlp, a_gate_mlp = block.get_mod_params(
        block.audio_scale_shift_table, temb_audio, batch_size
    )[:6]
    audio_hidden_states = _self_attention(
        block,
        step,
        "audio_attn1",
        block.audio_norm1,
        audio_hidden_states,
        a_scale_msa,
        a_shift_msa,
        a_gate_msa,
        audio_rotary_emb,
        audio_self_attention_mask,
    )
    hidden_states = _text_attention(
        block, step, "attn2", block.norm2, hidden_states, encoder_hidden_states, encoder_attention_mask
    )
    audio_hidden_states = _text_attention(
        block,
        step,
        "audio_attn2",
        block.audio_norm2,
        audio_hidden_states,
        audio_encoder_hidden_states,
        audio_encoder_attention_mask,
    )
    if use_a2v_cross_attention or use_v2a_cross_attention:
        if step.runs("audio_to_video_attn") or step.runs("video_to_audio_attn"):
            video, audio = block.audio_to_video_norm(hidden_states), block.video_to_audio_norm(audio_hidden_states)
        else:
            video = audio = None
        table = block.video_a2v_cross_attn_scale_shift_table
        v_a2v_scale, v_a2v_shift, v_v2a_scale, v_v2a_shift = block.get_mod_params(
            table[:4, :], temb_ca_scale_shift, batch_size
        )
        a2v_gate = block.get_mod_params(table[4:, :], temb_ca_gate, batch_size)[0].squeeze(2)
        table = block.audio_a2v_cross_attn_scale_shift_table
        a_a2v_scale, a_a2v_shift, a_v2a_scale, a_v2a_shift = block.get_mod_params(
            table[:4, :], temb_ca_audio_scale_shift, batch_size
        )
        v2a_gate = block.get_mod_params(table[4:, :], temb_ca_audio_gate, batch_size)[0].squeeze(2)
        if use_a2v_cross_attention:
            output = _cross_modal(
                block,
                step,
                "audio_to_video_attn",
                video,
                (v_a2v_scale, v_a2v_shift),
                audio,
                (a_a2v_scale, a_a2v_shift),
                (ca_video_rotary_emb, ca_audio_rotary_emb),
                a2v_cross_attention_mask,
            )
            hidden_states = hidden_states + a2v_gate * output
        if use_v2a_cross_attention:
            output = _cross_modal(
                block,
                step,
                "video_to_audio_attn",
                audio,
                (a_v2a_scale, a_v2a_shift),
                video,
                (v_v2a_scale, v_v2a_shift),
                (ca_audio_rotary_emb, ca_video_rotary_emb),
                v2a_cross_attention_mask,
            )
            audio_hidden_states = audio_hidden_states + v2a_gate * output
    output = (
        step.compute("ff", block.ff, block.norm3(hidden_states) * (1 + scale_mlp) + shift_mlp)
        if step.runs("ff")
        else step.replay("ff")
    )
    hidden_states = hidden_states + output * gate_mlp
    output = (
        step.compute(
            "audio_ff", block.audio_ff, block.audio_norm3(audio_hidden_states) * (1 + a_scale_mlp) + a_shift_mlp
        )
        if step.runs("audio_ff")
        else step.replay("audio_ff")
    )
    return hidden_states, audio_hidden_states + output * a_gate_mlp


def _supports(block: nn.Module) -> bool:
    """LTX-2.0's blocks: no prompt modulation of the cross-attention (LTX-2.3) and no perturbed attention."""
    return (
        type(block).__name__ == "LTX2VideoTransformerBlock"
        and not block.perturbed_attn
        and not block.cross_attn_adaln
        and not block.video_cross_attn_adaln
        and not block.audio_cross_attn_adaln
    )


class LTX2Adapter(ModelAdapter):
    family = "ltx2"
    transformer_classes = ("LTX2VideoTransformer3DModel",)
    vae_factor = 32
    groups = (
        BlockGroup(
            "transformer_blocks",
            (
                "attn1",
                "audio_attn1",
                "attn2",
                "audio_attn2",
                "audio_to_video_attn",
                "video_to_audio_attn",
                "ff",
                "audio_ff",
            ),
            skip=BlockSkip(_forward, _supports),
        ),
    )
    cross_attention = ("attn2", "audio_attn2")
    default_text_len = 1024  # LTX2Pipeline's max_sequence_length
    default_frames = 121
    presets = {"ltx-2": ArchPreset("ltx-2", _LTX_2, 1024, "Lightricks/LTX-2")}

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
        latent = latent_frames(frames, 8)
        audio = round(frames / _FPS * _AUDIO_LATENTS_PER_SECOND)
        return {
            "hidden_states": torch.empty(
                batch_size, latent * (height // 32) * (width // 32), config["in_channels"], device=device
            ),
            "audio_hidden_states": torch.empty(batch_size, audio, config["audio_in_channels"], device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["caption_channels"], device=device),
            "audio_encoder_hidden_states": torch.empty(batch_size, text_len, config["caption_channels"], device=device),
            "timestep": torch.empty(batch_size, device=device),
            "num_frames": latent,
            "height": height // 32,
            "width": width // 32,
            "fps": _FPS,
            "audio_num_frames": audio,
        }
