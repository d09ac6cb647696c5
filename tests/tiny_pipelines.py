"""Tiny diffusers pipelines built from configs (random weights, no downloads) for the tests."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderDC,
    AutoencoderKL,
    AutoencoderKLWan,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    Flux2Transformer2DModel,
    FluxPipeline,
    FluxTransformer2DModel,
    HunyuanVideo15Transformer3DModel,
    LTX2VideoTransformer3DModel,
    PixArtAlphaPipeline,
    PixArtTransformer2DModel,
    QwenImageTransformer2DModel,
    SanaPipeline,
    SanaTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    WanPipeline,
    WanTransformer3DModel,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    Gemma2Config,
    Gemma2Model,
    GemmaTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

VOCAB = ["<pad>", "</s>", "<unk>"] + [f"\u2581w{i}" for i in range(61)] + list("abcdefghijklmnopqrstuvwxyz")


def tiny_t5(d_model: int = 32) -> tuple[T5Tokenizer, T5EncoderModel]:
    tokenizer = T5Tokenizer(vocab=[(piece, 0.0) for piece in VOCAB], extra_ids=0)
    config = T5Config(
        vocab_size=len(VOCAB),
        d_model=d_model,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return tokenizer, T5EncoderModel(config).eval()


def tiny_vae(shift_factor: float | None = None) -> AutoencoderKL:
    """4 latent channels, 2x downsampling; FLUX and SD3 pipelines need a ``shift_factor``."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=32,
        shift_factor=shift_factor,
    ).eval()


def tiny_pixart_transformer(num_layers: int = 3, sample_size: int = 8) -> PixArtTransformer2DModel:
    return PixArtTransformer2DModel(
        sample_size=sample_size,
        num_layers=num_layers,
        patch_size=2,
        in_channels=4,
        out_channels=8,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=32,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        use_additional_conditions=False,
    ).eval()


def tiny_pixart_pipeline(num_layers: int = 3, seed: int = 0) -> PixArtAlphaPipeline:
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_t5()
    pipe = PixArtAlphaPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_vae(),
        transformer=tiny_pixart_transformer(num_layers),
        scheduler=DPMSolverMultistepScheduler(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


CLIP_VOCAB = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"w{i}</w>": 2 + i for i in range(61)}}


def tiny_clip(with_projection: bool = False, hidden: int = 32) -> tuple[CLIPTokenizer, CLIPTextModel]:
    """A word-level CLIP tokenizer (no merges) and a 2-layer text encoder: 77 positions like the real one."""
    tokenizer = CLIPTokenizer(
        vocab=CLIP_VOCAB, merges=[], unk_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=77
    )
    config = CLIPTextConfig(
        vocab_size=len(CLIP_VOCAB),
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        projection_dim=hidden,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    model = CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)
    return tokenizer, model.eval()


def tiny_flux_transformer(num_layers: int = 2, num_single_layers: int = 2) -> FluxTransformer2DModel:
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=(2, 2, 4),
    ).eval()


def tiny_flux_pipeline(seed: int = 0) -> FluxPipeline:
    """FLUX.1-dev's structure (CLIP + T5, 2 double + 2 single blocks, guidance embedding) at toy size."""
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_clip()
    tokenizer_2, text_encoder_2 = tiny_t5()
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=tiny_vae(shift_factor=0.1),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=tiny_flux_transformer(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sd3_transformer(num_layers: int = 3) -> SD3Transformer2DModel:
    """Block 0 has dual attention (attn2, as in SD3.5-medium); the last block is context-pre-only (no ff_context)."""
    return SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=num_layers,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=64,
        caption_projection_dim=16,
        pooled_projection_dim=64,
        pos_embed_max_size=16,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    ).eval()


def tiny_sd3_pipeline(seed: int = 0) -> StableDiffusion3Pipeline:
    """SD3's two CLIP encoders at toy size; without T5 (the pipeline then feeds zeros, as SD3 allows)."""
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_clip(with_projection=True)
    tokenizer_2, text_encoder_2 = tiny_clip(with_projection=True)
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=tiny_vae(shift_factor=0.1),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=None,
        tokenizer_3=None,
        transformer=tiny_sd3_transformer(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sana_transformer(num_layers: int = 3) -> SanaTransformer2DModel:
    return SanaTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=num_layers,
        num_cross_attention_heads=2,
        cross_attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=32,
        sample_size=8,
        patch_size=1,
    ).eval()


GEMMA_VOCAB = {
    t: i
    for i, t in enumerate(
        ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "\u2581", *"abcdefghijklmnopqrstuvwxyz0123456789"]
    )
}


def tiny_gemma2(hidden: int = 32) -> tuple[GemmaTokenizer, Gemma2Model]:
    """A character-level Gemma tokenizer (BPE without merges) and a 2-layer Gemma2 encoder."""
    tokenizer = GemmaTokenizer(vocab=GEMMA_VOCAB)
    config = Gemma2Config(
        vocab_size=len(GEMMA_VOCAB),
        hidden_size=hidden,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,
    )
    return tokenizer, Gemma2Model(config).eval()


def tiny_dc_ae() -> AutoencoderDC:
    """A DC-AE with 4 latent channels and 2x downsampling (the real one: 32 channels, 32x)."""
    return AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)),
        decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=(1, 1),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        scaling_factor=0.41407,
    ).eval()


def tiny_sana_pipeline(seed: int = 0) -> SanaPipeline:
    """Sana's structure (Gemma2 text encoder, DC-AE, flow matching) at toy size.

    Call it with ``use_resolution_binning=False`` (the bins are for real sizes), ``complex_human_instruction=None``
    (the default instruction is hundreds of tokens) and sides divisible by 32, as SanaPipeline requires.
    """
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_gemma2()
    pipe = SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=tiny_dc_ae(),
        transformer=tiny_sana_transformer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------- the video and new image families: bare transformers
# Each: (tiny transformer, inputs of one real call at timestep t, the pixel size, frames and text length the inputs
# stand for). ``count_macs(transformer, size, size, batch_size=2, text_len=TEXT, frames=...)`` assumes the same shapes.
TEXT = 5


def tiny_wan() -> tuple[WanTransformer3DModel, dict]:
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        text_dim=16,
        freq_dim=16,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=32,
    ).eval()
    return model, {"hidden_states": torch.randn(2, 4, 3, 8, 8), "encoder_hidden_states": torch.randn(2, TEXT, 16)}


def tiny_qwen_image() -> tuple[QwenImageTransformer2DModel, dict]:
    model = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=16,
        axes_dims_rope=(2, 2, 4),
    ).eval()
    return model, {
        "hidden_states": torch.randn(2, 16, 16),
        "encoder_hidden_states": torch.randn(2, TEXT, 16),
        "encoder_hidden_states_mask": torch.ones(2, TEXT),
        "img_shapes": [[(1, 4, 4)]] * 2,
    }


def tiny_flux2() -> tuple[Flux2Transformer2DModel, dict]:
    model = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=8,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=16,
        timestep_guidance_channels=16,
        axes_dims_rope=(2, 2, 2, 2),
    ).eval()
    return model, {
        "hidden_states": torch.randn(2, 16, 8),
        "encoder_hidden_states": torch.randn(2, TEXT, 16),
        "img_ids": torch.zeros(2, 16, 4),
        "txt_ids": torch.zeros(2, TEXT, 4),
        "guidance": torch.full((2,), 3.5),
    }


def tiny_hunyuan_video15() -> tuple[HunyuanVideo15Transformer3DModel, dict]:
    model = HunyuanVideo15Transformer3DModel(
        in_channels=9,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        num_refiner_layers=1,
        text_embed_dim=16,
        text_embed_2_dim=8,
        image_embed_dim=8,
        rope_axes_dim=(2, 2, 4),
        task_type="t2v",
    ).eval()
    # HunyuanVideo15Pipeline's lengths: 256 ByT5 tokens (here 8 valid, the rest padding) and 729 image tokens (zeros
    # for text-to-video: all padding)
    return model, {
        "hidden_states": torch.randn(2, 9, 3, 4, 4),
        "encoder_hidden_states": torch.randn(2, TEXT, 16),
        "encoder_attention_mask": torch.ones(2, TEXT),
        "encoder_hidden_states_2": torch.randn(2, 256, 8),
        "encoder_attention_mask_2": (torch.arange(256) < 8).float().expand(2, -1),
        "image_embeds": torch.zeros(2, 729, 8),
    }


def tiny_ltx2() -> tuple[LTX2VideoTransformer3DModel, dict]:
    model = LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        caption_channels=16,
    ).eval()
    # 9 frames at 128x128: 2 latent frames of 4x4, and round(9 / 24 fps * 25 audio latents per second) = 9
    return model, {
        "hidden_states": torch.randn(2, 32, 4),
        "audio_hidden_states": torch.randn(2, 9, 4),
        "encoder_hidden_states": torch.randn(2, TEXT, 16),
        "audio_encoder_hidden_states": torch.randn(2, TEXT, 16),
        "num_frames": 2,
        "height": 4,
        "width": 4,
        "fps": 24.0,
        "audio_num_frames": 9,
    }


def tiny_z_image() -> tuple[ZImageTransformer2DModel, dict]:
    model = ZImageTransformer2DModel(
        in_channels=4,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=16,
        axes_dims=[4, 6, 6],
        axes_lens=[64, 32, 32],
    ).eval()
    return model, {"x": [torch.randn(4, 1, 8, 8) for _ in range(2)], "cap_feats": [torch.randn(TEXT, 16)] * 2}


# name: (builder, timestep argument, timesteps of a 4-step loop, pixel size, frames or None)
NEW_FAMILIES = {
    "wan": (tiny_wan, "timestep", (999.0, 750.0, 500.0, 250.0), 64, 9),
    "qwen-image": (tiny_qwen_image, "timestep", (1.0, 0.75, 0.5, 0.25), 64, None),
    "flux2": (tiny_flux2, "timestep", (1.0, 0.75, 0.5, 0.25), 64, None),
    "hunyuan-video-1.5": (tiny_hunyuan_video15, "timestep", (999.0, 750.0, 500.0, 250.0), 64, 9),
    "ltx2": (tiny_ltx2, "timestep", (999.0, 750.0, 500.0, 250.0), 128, 9),
    # a falling t for the bare transformer's step clock (ZImagePipeline's own t rises: see docs/models.md)
    "z-image": (tiny_z_image, "t", (0.75, 0.5, 0.25, 0.0), 64, None),
}


def tiny_wan_pipeline(two_experts: bool = True, seed: int = 0) -> WanPipeline:
    """WanPipeline from tiny parts; with two experts, Wan 2.2 A14B's layout: ``transformer`` for the high-noise steps
    and ``transformer_2`` below ``boundary_ratio``."""
    torch.manual_seed(seed)
    tokenizer, text_encoder = tiny_t5()

    def expert() -> WanTransformer3DModel:
        return WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=8,
            in_channels=4,
            out_channels=4,
            text_dim=32,
            freq_dim=16,
            ffn_dim=32,
            num_layers=2,
            rope_max_seq_len=32,
        ).eval()

    vae = AutoencoderKLWan(
        base_dim=4,
        z_dim=4,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    ).eval()
    return WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=expert(),
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer_2=expert() if two_experts else None,
        boundary_ratio=0.6 if two_experts else None,
    )


def tiny_z_image_pipeline() -> ZImagePipeline:
    """ZImagePipeline around the tiny Z-Image transformer, called with prompt embeddings (no text encoder)."""
    torch.manual_seed(0)
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_vae(shift_factor=0.0),
        text_encoder=None,
        tokenizer=None,
        transformer=tiny_z_image()[0],
    )
