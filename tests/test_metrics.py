"""Quality metrics: fidelity against a reference; CLIP score and PickScore through their real hub loading code
(``from_pretrained`` of the published repository ids from a local hub cache: small random CLIPs for the scores'
formulas, PickScore's CLIP-H at full size with random weights)."""

import math
import shutil

import pytest
import torch
from metric_support import cache_folder, threads
from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ecad.generation import Generated
from ecad.metrics import ClipMetric, FidelityMetric, PickScoreMetric, get_metric
from ecad.metrics.images import to_pil

WORDS = ("a", "red", "circle", "blue", "square", "fox", "in", "the", "snow")
# CLIP-ViT-H-14 (laion/CLIP-ViT-H-14-laion2B-s32B-b79K, the model PickScore_v1 fine-tunes), as published.
CLIP_H_TEXT = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
}
SMALL_VOCAB = len(WORDS) + 2
SMALL_TEXT = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
    "vocab_size": SMALL_VOCAB,
}
SMALL_VISION = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}
CLIP_H_VISION = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 16,
    "num_hidden_layers": 32,
    "patch_size": 14,
    "image_size": 224,
}


def generated(seed, n=4, prompts=("a red circle", "a blue square"), size=32):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=generator)
    latents = torch.randn(n, 4, 4, 4, generator=generator)
    return Generated(images, latents, [prompts[i % len(prompts)] for i in range(n)])


def test_fidelity_is_perfect_on_the_reference_and_drops_with_noise():
    reference = generated(0)
    metric = get_metric("fidelity")
    metric.prepare(reference)
    same = metric(reference)
    assert same["quality"] == pytest.approx(1.0) and same["latent_rel_error"] == 0.0 and same["psnr"] == 100.0
    noisy = Generated(reference.images * 0.9 + 0.05, reference.latents * 1.1, reference.prompts)
    scores = metric(noisy)
    assert scores["quality"] < 1.0 and scores["latent_rel_error"] == pytest.approx(0.1, rel=1e-4)
    assert scores["psnr"] < 100.0
    with pytest.raises(RuntimeError, match="prepare"):
        FidelityMetric()(reference)


def clip_processor(image_size):
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1} | {w + "</w>": i + 2 for i, w in enumerate(WORDS)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def save_clip(tmp_path, cache, repo, processor_repo, text, vision, projection_dim, fast_random=False):
    """A random CLIP saved as ``repo`` and its processor as ``processor_repo`` in the hub cache ``cache``.

    ``fast_random``: built on the meta device and filled with seeded normal values in place (for CLIP-H, three
    times faster than transformers' initialisation); exp(logit_scale) = 100, as in trained CLIPs.
    """
    text = {**text, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}  # the small vocabulary's ids
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    torch.manual_seed(0)
    if fast_random:
        with torch.device("meta"):
            model = CLIPModel(config)
        model.to_empty(device="cpu")
        with torch.no_grad():
            for name, tensor in model.named_parameters():
                if tensor.ndim >= 2:
                    tensor.normal_(0, tensor.shape[-1] ** -0.5)
                else:
                    tensor.fill_(1.0 if name.endswith("weight") else 0.0)
            model.logit_scale.fill_(math.log(100))
    else:
        model = CLIPModel(config)
    model.eval().save_pretrained(tmp_path / "model")
    clip_processor(vision["image_size"]).save_pretrained(tmp_path / "processor")
    model.config.save_pretrained(tmp_path / "processor")  # a processor repository has the model's config too
    cache_folder(cache, repo, tmp_path / "model")
    cache_folder(cache, processor_repo, tmp_path / "processor")
    return model


def through_forward(model, processor, batch):
    """The score's cosine by another path: CLIPModel.forward's logits_per_image = exp(logit_scale) x cosine."""
    inputs = processor(
        text=batch.prompts, images=[to_pil(im) for im in batch.images], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        return model(**inputs).logits_per_image.diagonal() / model.logit_scale.exp()


def test_clip_score_through_the_hub_loading_path_with_a_small_clip(tmp_path):
    cache = tmp_path / "hub"
    repo = ClipMetric.default_model
    model = save_clip(tmp_path, cache, repo, repo, SMALL_TEXT, SMALL_VISION, 8)
    batch = generated(3, n=5)
    metric = get_metric("clip", cache_dir=cache, local_files_only=True, device="cpu", batch_size=2)
    scores = metric(batch)
    cosine = through_forward(model, clip_processor(32), batch)
    assert scores["quality"] == scores["clip_score"]
    assert scores["quality"] == pytest.approx((100 * cosine).clamp(min=0).mean().item(), rel=1e-5)
    assert torch.allclose(metric.score(batch.images, batch.prompts), (100 * cosine).clamp(min=0), rtol=1e-5)


def test_metrics_score_a_batch_per_forward_pass(tmp_path):
    cache = tmp_path / "hub"
    repo = ClipMetric.default_model
    save_clip(tmp_path, cache, repo, repo, SMALL_TEXT, SMALL_VISION, 8)
    batch = generated(4, n=7)
    one_call = ClipMetric(cache_dir=cache, local_files_only=True, device="cpu", batch_size=7)
    batched = ClipMetric(cache_dir=cache, local_files_only=True, device="cpu", batch_size=3)
    batched.score(batch.images[:1], batch.prompts[:1])
    calls = []
    batched.model.vision_model.register_forward_hook(lambda *_: calls.append(1))
    assert torch.allclose(
        batched.score(batch.images, batch.prompts), one_call.score(batch.images, batch.prompts), rtol=1e-5, atol=1e-5
    )
    assert len(calls) == 3
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        ClipMetric(cache_dir=cache, local_files_only=True, device="cpu", batch_size=0)(batch)


def test_pickscore_score_and_processor_with_a_small_clip(tmp_path):
    cache = tmp_path / "hub"
    model = save_clip(
        tmp_path, cache, PickScoreMetric.default_model, PickScoreMetric.default_processor, SMALL_TEXT, SMALL_VISION, 8
    )
    batch = generated(5, n=3, prompts=("a red fox in the snow", "a blue square"))
    metric = get_metric("pickscore", cache_dir=cache, local_files_only=True, device="cpu", batch_size=2)
    scores = metric(batch)
    expected = model.logit_scale.exp() * through_forward(model, clip_processor(32), batch)
    assert torch.allclose(metric.score(batch.images, batch.prompts), expected, rtol=1e-5)
    assert scores["quality"] == scores["pickscore"] == pytest.approx(expected.mean().item(), rel=1e-5)
    assert metric.processor_name == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert type(metric.processor.image_processor).__name__ == "CLIPImageProcessorPil"


@pytest.mark.slow
def test_pickscore_at_full_clip_h_size_through_the_hub_loading_path(tmp_path):
    """CLIP ViT-H/14 as PickScore_v1 uses it, random weights (3.9 GB) saved as yuvalkirstain/PickScore_v1 in a
    local hub cache, loaded by the metric's ``from_pretrained`` and run on two images (the score's formula is
    checked with a small CLIP above). 986.11M parameters, 632.08M in the image tower and 354.03M in the text tower:
    the numbers OpenCLIP publishes for ViT-H-14."""
    cache = tmp_path / "hub"
    batch = generated(5, n=2, prompts=("a red fox in the snow", "a blue square"), size=64)
    try:
        with threads(2):
            model = save_clip(
                tmp_path,
                cache,
                PickScoreMetric.default_model,
                PickScoreMetric.default_processor,
                CLIP_H_TEXT,
                CLIP_H_VISION,
                1024,
                fast_random=True,
            )
            probe = model.vision_model.encoder.layers[31].mlp.fc2.weight[:8].clone()
            del model
            metric = get_metric("pickscore", cache_dir=cache, local_files_only=True, device="cpu")
            scores = metric.score(batch.images, batch.prompts)
    finally:
        shutil.rmtree(tmp_path / "model")
    loaded = metric.model
    vision = sum(p.numel() for p in loaded.vision_model.parameters()) + loaded.visual_projection.weight.numel()
    text = sum(p.numel() for p in loaded.text_model.parameters()) + loaded.text_projection.weight.numel()
    assert (vision, text, sum(p.numel() for p in loaded.parameters())) == (632_076_800, 354_032_640, 986_109_441)
    assert torch.equal(loaded.vision_model.encoder.layers[31].mlp.fc2.weight[:8], probe)
    assert scores.shape == (2,) and torch.isfinite(scores).all() and scores[0] != scores[1]
    assert loaded.logit_scale.exp().item() == pytest.approx(100.0)


def test_missing_weights_offline_say_how_to_get_them(tmp_path):
    metric = get_metric("pickscore", cache_dir=tmp_path, local_files_only=True, device="cpu")
    with pytest.raises(
        OSError,
        match=r"cannot get the hub repository yuvalkirstain/PickScore_v1 .*"
        r"run `hf download yuvalkirstain/PickScore_v1`",
    ):
        metric(generated(6, n=1))


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'lpips'"):
        get_metric("lpips")
