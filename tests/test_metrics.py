"""Quality metrics: fidelity against a reference, and the real ImageReward / CLIP code paths with local models."""

import pytest
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

from ecad.generation import Generated
from ecad.metrics import ClipMetric, FidelityMetric, ImageRewardMetric, get_metric


def generated(seed, n=4, prompts=("a red circle", "a blue square")):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=generator)
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


class StandInScorer:
    """ImageReward's interface: score(prompt, [PIL images]) -> list of floats."""

    def __init__(self):
        self.calls = []

    def score(self, prompt, images):
        self.calls.append((prompt, len(images)))
        return [float(len(prompt)) + im.getpixel((0, 0))[0] / 255 for im in images]


def test_image_reward_groups_by_prompt_and_averages():
    batch = generated(1)
    scorer = StandInScorer()
    scores = ImageRewardMetric(scorer=scorer)(batch)
    assert scorer.calls == [("a red circle", 2), ("a blue square", 2)]
    expected = [len(p) + round(float(batch.images[i, 0, 0, 0]) * 255) / 255 for i, p in enumerate(batch.prompts)]
    assert scores["quality"] == pytest.approx(sum(expected) / 4)


def test_image_reward_without_the_package_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_image_reward(name, *args, **kwargs):
        if name == "ImageReward":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_image_reward)
    with pytest.raises(ImportError, match=r"pip install 'ecad\[image-reward\]'"):
        ImageRewardMetric()(generated(2))


def tiny_clip():
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for word in ("a", "red", "circle", "blue", "square"):
        vocab[word + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    torch.manual_seed(0)
    return CLIPModel(config).eval(), processor


def test_clip_score_runs_through_torchmetrics_with_a_local_model():
    batch = generated(3)
    scores = ClipMetric(model=tiny_clip)(batch)
    assert scores["quality"] == scores["clip_score"]
    # the same number through CLIPModel.forward: logits_per_image = exp(logit_scale) * cosine
    model, processor = tiny_clip()
    from ecad.metrics.images import to_pil

    inputs = processor(text=batch.prompts, images=[to_pil(im) for im in batch.images], return_tensors="pt",
                       padding=True)
    with torch.no_grad():
        cosine = model(**inputs).logits_per_image.diagonal() / model.logit_scale.exp()
    assert scores["quality"] == pytest.approx((100 * cosine).clamp(min=0).mean().item(), rel=1e-5)


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'lpips'"):
        get_metric("lpips")
