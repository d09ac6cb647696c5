"""Tiny diffusers pipelines built from configs (random weights, no downloads) for the tests."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderDC, AutoencoderKL, DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, FluxPipeline,
    FluxTransformer2DModel, PixArtAlphaPipeline, PixArtTransformer2DModel, SanaPipeline, SanaTransformer2DModel,
    SD3Transformer2DModel, StableDiffusion3Pipeline,
)
from transformers import (
    CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer, Gemma2Config, Gemma2Model,
    GemmaTokenizer, T5Config, T5EncoderModel, T5Tokenizer,
)

VOCAB = ["<pad>", "</s>", "<unk>"] + [f"\u2581w{i}" for i in range(61)] + list("abcdefghijklmnopqrstuvwxyz")


def tiny_t5(d_model: int = 32) -> tuple[T5Tokenizer, T5EncoderModel]:
    tokenizer = T5Tokenizer(vocab=[(piece, 0.0) for piece in VOCAB], extra_ids=0)
    config = T5Config(
        vocab_size=len(VOCAB), d_model=d_model, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    return tokenizer, T5EncoderModel(config).eval()


def tiny_vae(shift_factor: float | None = None) -> AutoencoderKL:
    """4 latent channels, 2x downsampling; FLUX and SD3 pipelines need a ``shift_factor``."""
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=4, sample_size=32, shift_factor=shift_factor,
    ).eval()


def tiny_pixart_transformer(num_layers: int = 3, sample_size: int = 8) -> PixArtTransformer2DModel:
    return PixArtTransformer2DModel(
        sample_size=sample_size, num_layers=num_layers, patch_size=2, in_channels=4, out_channels=8,
        num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16, caption_channels=32,
        norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6, use_additional_conditions=False,
    ).eval()


def tiny_pixart_pipeline(num_layers: int = 3, seed: int = 0) -> PixArtAlphaPipeline:
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_t5()
    pipe = PixArtAlphaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=tiny_vae(),
        transformer=tiny_pixart_transformer(num_layers), scheduler=DPMSolverMultistepScheduler(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


CLIP_VOCAB = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"w{i}</w>": 2 + i for i in range(61)}}


def tiny_clip(with_projection: bool = False, hidden: int = 32) -> tuple[CLIPTokenizer, CLIPTextModel]:
    """A word-level CLIP tokenizer (no merges) and a 2-layer text encoder: 77 positions like the real one."""
    tokenizer = CLIPTokenizer(vocab=CLIP_VOCAB, merges=[], unk_token="<|endoftext|>", pad_token="<|endoftext|>",
                              model_max_length=77)
    config = CLIPTextConfig(
        vocab_size=len(CLIP_VOCAB), hidden_size=hidden, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, projection_dim=hidden, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )
    model = CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)
    return tokenizer, model.eval()


def tiny_flux_transformer(num_layers: int = 2, num_single_layers: int = 2) -> FluxTransformer2DModel:
    return FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=num_layers, num_single_layers=num_single_layers,
        attention_head_dim=8, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=(2, 2, 4),
    ).eval()


def tiny_flux_pipeline(seed: int = 0) -> FluxPipeline:
    """FLUX.1-dev's structure (CLIP + T5, 2 double + 2 single blocks, guidance embedding) at toy size."""
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_clip()
    tokenizer_2, text_encoder_2 = tiny_t5()
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=tiny_vae(shift_factor=0.1), text_encoder=text_encoder,
        tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
        transformer=tiny_flux_transformer(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sd3_transformer(num_layers: int = 3) -> SD3Transformer2DModel:
    """Block 0 has dual attention (attn2, as in SD3.5-medium); the last block is context-pre-only (no ff_context)."""
    return SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=num_layers, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=64, caption_projection_dim=16, pooled_projection_dim=64,
        pos_embed_max_size=16, dual_attention_layers=(0,), qk_norm="rms_norm",
    ).eval()


def tiny_sd3_pipeline(seed: int = 0) -> StableDiffusion3Pipeline:
    """SD3's two CLIP encoders at toy size; without T5 (the pipeline then feeds zeros, as SD3 allows)."""
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_clip(with_projection=True)
    tokenizer_2, text_encoder_2 = tiny_clip(with_projection=True)
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=tiny_vae(shift_factor=0.1), text_encoder=text_encoder,
        tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, text_encoder_3=None,
        tokenizer_3=None, transformer=tiny_sd3_transformer(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sana_transformer(num_layers: int = 3) -> SanaTransformer2DModel:
    return SanaTransformer2DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=num_layers,
        num_cross_attention_heads=2, cross_attention_head_dim=8, cross_attention_dim=16, caption_channels=32,
        sample_size=8, patch_size=1,
    ).eval()


GEMMA_VOCAB = {t: i for i, t in enumerate(
    ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "\u2581", *"abcdefghijklmnopqrstuvwxyz0123456789"])}


def tiny_gemma2(hidden: int = 32) -> tuple[GemmaTokenizer, Gemma2Model]:
    """A character-level Gemma tokenizer (BPE without merges) and a 2-layer Gemma2 encoder."""
    tokenizer = GemmaTokenizer(vocab=GEMMA_VOCAB)
    config = Gemma2Config(
        vocab_size=len(GEMMA_VOCAB), hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
    )
    return tokenizer, Gemma2Model(config).eval()


def tiny_dc_ae() -> AutoencoderDC:
    """A DC-AE with 4 latent channels and 2x downsampling (the real one: 32 channels, 32x)."""
    return AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2, encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8), encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1), downsample_block_type="conv",
        upsample_block_type="interpolate", scaling_factor=0.41407,
    ).eval()


def tiny_sana_pipeline(seed: int = 0) -> SanaPipeline:
    """Sana's structure (Gemma2 text encoder, DC-AE, flow matching) at toy size.

    Call it with ``use_resolution_binning=False`` (the bins are for real sizes), ``complex_human_instruction=None``
    (the default instruction is hundreds of tokens) and sides divisible by 32, as SanaPipeline requires.
    """
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_gemma2()
    pipe = SanaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=tiny_dc_ae(), transformer=tiny_sana_transformer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
