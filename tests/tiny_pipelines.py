"""Tiny diffusers pipelines built from configs (random weights, no downloads) for the tests."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel
from transformers import T5Config, T5EncoderModel, T5Tokenizer

VOCAB = ["<pad>", "</s>", "<unk>"] + [f"\u2581w{i}" for i in range(61)] + list("abcdefghijklmnopqrstuvwxyz")


def tiny_t5(d_model: int = 32) -> tuple[T5Tokenizer, T5EncoderModel]:
    tokenizer = T5Tokenizer(vocab=[(piece, 0.0) for piece in VOCAB], extra_ids=0)
    config = T5Config(
        vocab_size=len(VOCAB), d_model=d_model, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    return tokenizer, T5EncoderModel(config).eval()


def tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=4, sample_size=32,
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
