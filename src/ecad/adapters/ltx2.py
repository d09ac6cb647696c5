"""LTX-2 (``LTX2VideoTransformer3DModel``): 48 audio-video blocks.

Each block has a video and an audio stream: self-attention (``attn1``, ``audio_attn1``), cross-attention to the text
(``attn2``, ``audio_attn2``), attention between the streams (``audio_to_video_attn``, ``video_to_audio_attn``) and a
feed-forward per stream (``ff``, ``audio_ff``): eight components, each cached as the module's own output before its
gate. No skip forward yet: the blocks run their own forward, so a replayed component still pays its norm and
modulation (a few percent of its MACs, none of its attention). Video latents: 128 channels, the VAE compresses 8x in
time and 32x in space, no patching; audio latents: 128 channels per frame of 40 ms (16 kHz, hop 160, 4x).
"""

from __future__ import annotations

from typing import Any

import torch

from .base import ArchPreset, BlockGroup, ModelAdapter
from .wan import latent_frames

# Lightricks/LTX-2, the diffusers transformer config: the defaults of LTX2VideoTransformer3DModel, which
# scripts/convert_ltx2_to_diffusers.py in huggingface/diffusers writes for the LTX-2.0 checkpoint (inferred from the
# class, not read from the hub file).
_LTX_2 = {
    "_class_name": "LTX2VideoTransformer3DModel", "activation_fn": "gelu-approximate", "attention_head_dim": 128,
    "audio_attention_head_dim": 64, "audio_cross_attention_dim": 2048, "audio_in_channels": 128,
    "audio_num_attention_heads": 32, "audio_out_channels": 128, "caption_channels": 3840, "cross_attention_dim": 4096,
    "in_channels": 128, "num_attention_heads": 32, "num_layers": 48, "out_channels": 128, "patch_size": 1,
    "patch_size_t": 1,
}
_FPS = 24.0
_AUDIO_LATENTS_PER_SECOND = 16000 / 160 / 4  # LTX2Pipeline: sampling rate / hop length / audio VAE compression


class LTX2Adapter(ModelAdapter):
    family = "ltx2"
    transformer_classes = ("LTX2VideoTransformer3DModel",)
    groups = (BlockGroup("transformer_blocks", ("attn1", "audio_attn1", "attn2", "audio_attn2", "audio_to_video_attn",
                                                "video_to_audio_attn", "ff", "audio_ff")),)
    cross_attention = ("attn2", "audio_attn2")
    default_text_len = 1024  # LTX2Pipeline's max_sequence_length
    default_frames = 121
    presets = {"ltx-2": ArchPreset("ltx-2", _LTX_2, 1024, "Lightricks/LTX-2")}

    def pixel_multiple(self, config: dict[str, Any]) -> int:
        return 32 * int(config.get("patch_size") or 1)

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str,
        frames: int = 1,
    ) -> dict[str, Any]:
        latent = latent_frames(frames, 8)
        audio = round(frames / _FPS * _AUDIO_LATENTS_PER_SECOND)
        return {
            "hidden_states": torch.empty(batch_size, latent * (height // 32) * (width // 32), config["in_channels"],
                                         device=device),
            "audio_hidden_states": torch.empty(batch_size, audio, config["audio_in_channels"], device=device),
            "encoder_hidden_states": torch.empty(batch_size, text_len, config["caption_channels"], device=device),
            "audio_encoder_hidden_states": torch.empty(batch_size, text_len, config["caption_channels"], device=device),
            "timestep": torch.empty(batch_size, device=device),
            "num_frames": latent, "height": height // 32, "width": width // 32, "fps": _FPS, "audio_num_frames": audio,
        }
