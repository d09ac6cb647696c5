"""Untrained tiny-shapes components from code-only configs (no downloads, no tokenizer files).

Sizes are chosen so that a 64x64 image at 20 steps with CFG takes about a second on 2 CPU cores:
the VAE downsamples by 4 (16x16x4 latents), the DiT uses patch size 2 (64 image tokens).
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from .scenes import vocabulary

IMAGE_SIZE = 64
LATENT_SIZE = 16
LATENT_CHANNELS = 4
MAX_SEQUENCE_LENGTH = 16  # longest caption is 11 words + </s>
TEXT_DIM = 64
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def build_tokenizer() -> T5Tokenizer:
    """Word-level T5 tokenizer: one piece per grammar word, so every caption is its word sequence."""
    pieces = [(t, 0.0) for t in SPECIAL_TOKENS] + [(f"\u2581{w}", -1.0) for w in vocabulary()]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=MAX_SEQUENCE_LENGTH)


def build_text_encoder() -> T5EncoderModel:
    config = T5Config(
        vocab_size=len(SPECIAL_TOKENS) + len(vocabulary()),
        d_model=TEXT_DIM,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config).eval()


def build_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,
    ).eval()


def build_transformer(hidden: int = 128, layers: int = 8, heads: int = 4) -> PixArtTransformer2DModel:
    return PixArtTransformer2DModel(
        sample_size=LATENT_SIZE,
        num_layers=layers,
        patch_size=2,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_attention_heads=heads,
        attention_head_dim=hidden // heads,
        cross_attention_dim=hidden,
        caption_channels=TEXT_DIM,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        use_additional_conditions=False,
    ).eval()


def build_scheduler() -> DPMSolverMultistepScheduler:
    """v-prediction on PixArt's linear beta schedule (the training loss uses the same betas).

    v rather than PixArt's epsilon: with epsilon the high-noise steps, where the layout is decided,
    carried almost no gradient in our short CPU training, and samples stayed shapeless."""
    return DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_start=0.0001,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="v_prediction",
        solver_order=2,
    )


def build_pipeline(
    transformer: PixArtTransformer2DModel | None = None,
    text_encoder: T5EncoderModel | None = None,
    vae: AutoencoderKL | None = None,
) -> PixArtAlphaPipeline:
    """Assemble a PixArtAlphaPipeline from the given (trained) parts, building missing ones."""
    pipe = PixArtAlphaPipeline(
        tokenizer=build_tokenizer(),
        text_encoder=text_encoder or build_text_encoder(),
        vae=vae or build_vae(),
        transformer=transformer or build_transformer(),
        scheduler=build_scheduler(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
