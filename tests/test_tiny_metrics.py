"""tiny-reward and shape-fid on real generator renders: they tell matching from non-matching images."""

import numpy as np
import pytest

from ecad.generation import Generated
from ecad.metrics import get_metric
from ecad.models.prompts import load_prompts
from ecad.models.tiny_shapes.scenes import layout, parse_caption, render_batch


def renders(prompts, seed):
    return render_batch([layout(parse_caption(p), np.random.default_rng(seed + i)) for i, p in enumerate(prompts)])


@pytest.fixture(scope="module")
def prompts():
    return load_prompts("tiny-shapes")


def test_tiny_reward_prefers_the_right_caption(prompts):
    images = renders(prompts, 100)
    metric = get_metric("tiny-reward")
    right = metric(Generated(images, images, prompts))
    wrong = metric(Generated(images, images, prompts[1:] + prompts[:1]))
    assert right["match_rate"] > 0.9 and right["quality"] > 0.9
    assert wrong["quality"] < 0.2


def test_shape_fid_is_small_for_real_renders_and_large_for_noise(prompts):
    import torch

    metric = get_metric("shape-fid")
    real = metric(Generated(renders(prompts, 500), None, prompts))
    noise = metric(Generated(torch.rand(len(prompts), 3, 64, 64), None, prompts))
    assert noise["shape_fid"] > 10 * real["shape_fid"]
    assert real["quality"] == -real["shape_fid"]


def test_builtin_tiny_shapes_prompt_sets_are_disjoint():
    from ecad.models.tiny_shapes.scenes import is_held_out

    calibration, heldout = load_prompts("tiny-shapes"), load_prompts("tiny-shapes-heldout")
    assert len(calibration) == 16 and len(heldout) == 64
    assert not set(calibration) & set(heldout)
    assert all(is_held_out(p) for p in heldout) and not any(is_held_out(p) for p in calibration)
