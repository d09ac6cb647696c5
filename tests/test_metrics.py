"""Quality metrics: fidelity against a reference; CLIP score and PickScore through their real hub loading code
(``from_pretrained`` of the published repository ids, from a local hub cache holding small or reduced-depth models)."""

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
CLIP_H_TEXT = {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
               "max_position_embeddings": 77, "vocab_size": 49408}
SMALL_VOCAB = len(WORDS) + 2
SMALL_TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "max_position_embeddings": 77, "vocab_size": SMALL_VOCAB}
SMALL_VISION = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "image_size": 32, "patch_size": 8}
CLIP_H_VISION = {"hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 16, "num_hidden_layers": 32,
                 "patch_size": 14, "image_size": 224}


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
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                            crop_size={"height": image_size, "width": image_size})
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def save_clip(tmp_path, cache, repo, processor_repo, text, vision, projection_dim):
    """A random CLIP saved as ``repo`` and its processor as ``processor_repo`` in the hub cache ``cache``."""
    text = {**text, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}  # the small vocabulary's ids
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)).eval()
    model.save_pretrained(tmp_path / "model")
    clip_processor(vision["image_size"]).save_pretrained(tmp_path / "processor")
    model.config.save_pretrained(tmp_path / "processor")  # a processor repository has the model's config too
    cache_folder(cache, repo, tmp_path / "model")
    cache_folder(cache, processor_repo, tmp_path / "processor")
    return model


def through_forward(model, processor, batch):
    """The score's cosine by another path: CLIPModel.forward's logits_per_image = exp(logit_scale) x cosine."""
    inputs = processor(text=batch.prompts, images=[to_pil(im) for im in batch.images], return_tensors="pt",
                       padding=True)
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
    assert torch.allclose(batched.score(batch.images, batch.prompts), one_call.score(batch.images, batch.prompts),
                          rtol=1e-5, atol=1e-5)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        ClipMetric(cache_dir=cache, local_files_only=True, device="cpu", batch_size=0)(batch)


def test_pickscore_at_clip_h_width_two_layers_deep_through_the_hub_loading_path(tmp_path):
    """CLIP-H's widths, heads, patch and image size, with 2 of its 24 text and 32 vision layers and the test's small
    vocabulary (the full model is 3.9 GB of random weights to write and read back here; its structure is checked on
    the meta device below)."""
    cache = tmp_path / "hub"
    model = save_clip(tmp_path, cache, PickScoreMetric.default_model, PickScoreMetric.default_processor,
                      {**CLIP_H_TEXT, "num_hidden_layers": 2, "vocab_size": SMALL_VOCAB},
                      {**CLIP_H_VISION, "num_hidden_layers": 2}, 1024)
    batch = generated(5, n=3, prompts=("a red fox in the snow", "a blue square"), size=64)
    metric = get_metric("pickscore", cache_dir=cache, local_files_only=True, device="cpu", batch_size=2)
    with threads(2):
        scores = metric(batch)
        per_image = metric.score(batch.images, batch.prompts)
    expected = model.logit_scale.exp() * through_forward(model, clip_processor(224), batch)
    assert torch.allclose(per_image, expected, rtol=1e-4)
    assert scores["quality"] == scores["pickscore"] == pytest.approx(expected.mean().item(), rel=1e-4)
    assert metric.processor_name == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert type(metric.processor.image_processor).__name__ == "CLIPImageProcessorPil"


def test_pickscore_architecture_at_full_size_on_the_meta_device():
    """The CLIP-H widths the reduced-depth test uses, at full depth, are ViT-H/14 as PickScore_v1 uses it: 986.11M
    parameters (632.08M image tower, 354.03M text tower), the numbers OpenCLIP publishes for ViT-H-14."""
    with torch.device("meta"):
        model = CLIPModel(CLIPConfig(text_config=CLIP_H_TEXT, vision_config=CLIP_H_VISION, projection_dim=1024))
    vision = sum(p.numel() for p in model.vision_model.parameters()) + model.visual_projection.weight.numel()
    text = sum(p.numel() for p in model.text_model.parameters()) + model.text_projection.weight.numel()
    assert (vision, text, sum(p.numel() for p in model.parameters())) == (632_076_800, 354_032_640, 986_109_441)


def test_missing_weights_offline_say_how_to_get_them(tmp_path):
    metric = get_metric("pickscore", cache_dir=tmp_path, local_files_only=True, device="cpu")
    with pytest.raises(OSError, match=r"cannot get the hub repository yuvalkirstain/PickScore_v1 .*"
                                      r"run `hf download yuvalkirstain/PickScore_v1`"):
        metric(generated(6, n=1))


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'lpips'"):
        get_metric("lpips")
