"""Real pipeline architectures with random weights, built offline, for speed benchmarks.

Speed does not depend on weight values, so PixArt-XL-2 and FLUX.1-dev are timed with their published
transformer (ecad's presets), text-encoder and VAE configs and random weights: no download, no licence
gate, same FLOPs and memory traffic. Tokenizers are word-level ones built in code; the pipelines pad
prompts to their fixed lengths (PixArt: 120 T5 tokens; FLUX: 77 CLIP + 512 T5 tokens), so the text
encoders do the same work as with the real tokenizers.

    --model random:pixart-alpha   (or random:pixart-sigma, random:flux-dev)

``layers`` / ``text_layers`` shrink the transformer and the text encoders for a CPU smoke test only.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    PixArtAlphaPipeline,
    PixArtSigmaPipeline,
    PixArtTransformer2DModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5Tokenizer

from ecad.adapters import ADAPTERS

PREFIX = "random:"
WORDS = 1000  # prompt words the code-built tokenizers know; the embedding tables keep their real sizes

# google/t5-v1_1-xxl (PixArt's and FLUX's text_encoder_2), CLIP ViT-L/14 text tower (FLUX's text_encoder)
T5_XXL = dict(
    vocab_size=32128,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
    tie_word_embeddings=False,
)
CLIP_L = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_attention_heads=12,
    num_hidden_layers=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    projection_dim=768,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=1,
)
# Stable Diffusion's VAE (PixArt) and FLUX's 16-channel VAE
SD_VAE = dict(latent_channels=4, scaling_factor=0.18215)
FLUX_VAE = dict(
    latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False
)


def prompts(n: int) -> list[str]:
    """Distinct prompts of in-vocabulary words (the tokenizers below are word level)."""
    return [" ".join(f"w{(7 * i + j) % WORDS}" for j in range(12)) for i in range(n)]


def _t5_tokenizer() -> T5Tokenizer:
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(f"\u2581w{i}", -1.0) for i in range(WORDS)]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _t5_model(text_layers: int | None) -> T5EncoderModel:
    return T5EncoderModel(T5Config(**{**T5_XXL, "num_layers": text_layers or T5_XXL["num_layers"]}))


def _clip_tokenizer() -> CLIPTokenizer:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"w{i}</w>": 2 + i for i in range(WORDS)}}
    return CLIPTokenizer(
        vocab=vocab, merges=[], unk_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=77
    )


def _clip_model(text_layers: int | None) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(**{**CLIP_L, "num_hidden_layers": text_layers or CLIP_L["num_hidden_layers"]}))


def _vae(**config: Any) -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        sample_size=1024,
        **config,
    )


def _assemble(preset: str, models: dict[str, Any]) -> Any:
    """Tokenizers and scheduler (host-side, float32) plus the models -> the pipeline."""
    if preset.startswith("pixart"):
        cls = PixArtSigmaPipeline if preset == "pixart-sigma" else PixArtAlphaPipeline
        return cls(tokenizer=_t5_tokenizer(), scheduler=DPMSolverMultistepScheduler(), **models)
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return FluxPipeline(scheduler=scheduler, tokenizer=_clip_tokenizer(), tokenizer_2=_t5_tokenizer(), **models)


def _transformer_config(preset: str, layers: int | None) -> dict[str, Any]:
    for adapter in ADAPTERS:
        if preset in adapter.presets:
            config = {k: v for k, v in adapter.presets[preset].config.items() if not k.startswith("_")}
            if layers:
                config["num_layers"] = layers
                if "num_single_layers" in config:
                    config["num_single_layers"] = layers
            return config
    raise ValueError(f"unknown preset {preset!r}; random pipelines exist for pixart-alpha, pixart-sigma, flux-dev")


def build(
    model: str,
    dtype: torch.dtype,
    device: str | torch.device,
    layers: int | None = None,
    text_layers: int | None = None,
    seed: int = 0,
) -> Any:
    """``random:<preset>`` -> the preset's pipeline with random weights in ``dtype`` on ``device``."""
    preset = model.removeprefix(PREFIX)
    config = _transformer_config(preset, layers)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in place, in the target dtype: FLUX.1 in float32 on the host is 48 GB
    try:
        with torch.device(device):
            models = _models(preset, config, text_layers)
    finally:
        torch.set_default_dtype(previous)
    pipe = _assemble(preset, models)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


def _models(preset: str, config: dict[str, Any], text_layers: int | None) -> dict[str, Any]:
    """The weighted parts (built under the caller's device and dtype)."""
    if preset.startswith("pixart"):
        return {
            "text_encoder": _t5_model(text_layers),
            "vae": _vae(**SD_VAE),
            "transformer": PixArtTransformer2DModel(**config),
        }
    if preset == "flux-dev":
        return {
            "text_encoder": _clip_model(text_layers),
            "text_encoder_2": _t5_model(text_layers),
            "vae": _vae(**FLUX_VAE),
            "transformer": FluxTransformer2DModel(**config),
        }
    raise ValueError(
        f"no random pipeline for {preset!r}; use random:pixart-alpha, random:pixart-sigma or random:flux-dev"
    )
