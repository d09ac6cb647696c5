"""tiny-shapes: the procedural generator, the shipped pipeline and the shipped reward model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecad.models.tiny_shapes import (
    PIPELINE_DIR,
    PIPELINE_KWARGS,
    REWARD_DIR,
    load_pipeline,
    load_reward_model,
    shape_fid,
)
from ecad.models.tiny_shapes.scenes import (
    all_captions,
    caption,
    is_held_out,
    parse_caption,
    render,
    render_batch,
    sample_scene,
    sample_spec,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def judge():
    return load_reward_model()


def _scenes(seed: int, n: int, split: str = "all"):
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, split) for _ in range(n)]


def test_generator_is_deterministic_by_seed():
    a, b, c = _scenes(3, 20), _scenes(3, 20), _scenes(4, 20)
    assert a == b and a != c
    assert torch.equal(render_batch(a), render_batch(b))
    image = render(a[0], 64)
    assert image.shape == (3, 64, 64) and image.min() >= 0 and image.max() <= 1
    assert len({s.spec.relation is None for s in a}) == 2  # both one- and two-object scenes occur


def test_caption_round_trip():
    for scene in _scenes(5, 200):
        assert parse_caption(caption(scene)) == scene.spec
    assert parse_caption("a small red circle above a large blue square").relation == "above"
    with pytest.raises(ValueError):
        parse_caption("a small red hexagon on the left")
    texts = all_captions()
    assert len(texts) == len(set(texts)) and all(parse_caption(t) for t in texts)


def test_held_out_captions_are_disjoint_from_training():
    train, held_out = set(all_captions("train")), set(all_captions("heldout"))
    assert not train & held_out and len(held_out) > 200 and len(train) > 4000
    rng = np.random.default_rng(0)
    sampled = {caption(sample_spec(rng, "train")) for _ in range(2000)}
    assert sampled <= train and not any(is_held_out(t) for t in sampled)
    assert all(is_held_out(caption(sample_spec(rng, "heldout"))) for _ in range(50))


def test_pipeline_loads_offline_and_generates_deterministically(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (PIPELINE_DIR / "model_index.json").is_file()
    pipe = load_pipeline()
    assert not pipe.text_encoder.training and not pipe.transformer.training
    kwargs = dict(num_inference_steps=4, guidance_scale=4.5, output_type="pt", **PIPELINE_KWARGS)
    prompt = "a large red circle above a small blue square"
    a = pipe(prompt, generator=torch.Generator().manual_seed(0), **kwargs).images
    b = pipe(prompt, generator=torch.Generator().manual_seed(0), **kwargs).images
    assert a.shape == (1, 3, 64, 64) and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1


def test_reward_accepts_real_images_and_rejects_wrong_captions(judge):
    assert (REWARD_DIR / "model.safetensors").is_file()
    scenes = _scenes(11, 64, "heldout")
    images, captions = render_batch(scenes), [caption(s) for s in scenes]
    matched = judge.score(images, captions)
    mismatched = judge.score(images, captions[1:] + captions[:1])
    assert matched.shape == (64,) and 0 <= matched.min() and matched.max() <= 1
    assert (matched > 0.5).float().mean() > 0.95
    assert (mismatched > 0.5).float().mean() < 0.1
    assert matched.mean() > mismatched.mean() + 0.8
    # Swapping the relation's direction and the objects describes the same image: same reward.
    spec = next(s.spec for s in scenes if s.spec.relation == "above")
    flipped = caption(type(spec)(objects=spec.objects[::-1], relation="below"))
    index = captions.index(caption(spec))
    assert abs(float(judge.score(images[index : index + 1], [flipped])) - float(matched[index])) < 1e-5


def test_shape_fid(judge):
    real = render_batch(_scenes(21, 200))
    other = render_batch(_scenes(22, 200))
    noise = torch.rand_like(real)
    assert shape_fid(judge, real, real) < 1e-6
    same_distribution, versus_noise = shape_fid(judge, real, other), shape_fid(judge, real, noise)
    assert versus_noise > 20 * same_distribution


def test_python_path_is_as_easy_as_the_cli(monkeypatch):
    """`ecad.tiny_shapes.load_pipeline()` works with just a prompt; the plain diffusers class on the package folder
    gives the same images when called with the model's kwargs (its default call cannot work, see the docstring)."""
    from diffusers import PixArtAlphaPipeline

    import ecad
    from ecad.models.tiny_shapes import GUIDANCE_SCALE

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    prompt = "a small red circle above a large blue square"
    easy = ecad.tiny_shapes.load_pipeline()  # reachable after a plain `import ecad`
    easy.set_progress_bar_config(disable=True)
    image = easy(prompt, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="pt").images
    plain = PixArtAlphaPipeline.from_pretrained(PIPELINE_DIR)
    plain.set_progress_bar_config(disable=True)
    same = plain(
        prompt,
        num_inference_steps=4,
        guidance_scale=GUIDANCE_SCALE,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        **PIPELINE_KWARGS,
    ).images
    assert image.shape == (1, 3, 64, 64) and torch.equal(image, same)
    with pytest.raises(ValueError, match="Invalid sample size"):  # PixArt's binning knows only 256-1024 px models
        plain(prompt, num_inference_steps=2)
    from ecad.models.loading import load_pipeline as load_by_name

    assert type(load_by_name("tiny-shapes", device="cpu")).__name__ == "TinyShapesPipeline"
