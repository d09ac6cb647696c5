"""The calibration generator reproduces each pipeline's own output, with text encoded once, for every family."""

import pytest
import torch
from tiny_pipelines import tiny_flux_pipeline, tiny_pixart_pipeline, tiny_sd3_pipeline

import ecad
from ecad.generation import Calibration, CalibrationGenerator

PROMPTS = ("a w1 w2", "w3")
FAMILIES = {
    "pixart": (tiny_pixart_pipeline, {"use_resolution_binning": False}, 16),
    "flux": (tiny_flux_pipeline, {}, 32),
    "sd3": (tiny_sd3_pipeline, {}, 16),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_generator_matches_the_pipeline_and_caches(family):
    build, extra, size = FAMILIES[family]
    pipe = build()
    calibration = Calibration(
        PROMPTS, images_per_prompt=2, num_steps=4, height=size, width=size, guidance_scale=3.0, batch_size=3, seed=5
    )
    generator = CalibrationGenerator(pipe, calibration)
    uncached = generator(None)
    assert uncached.images.shape == (4, 3, size, size) and uncached.prompts == [p for p in PROMPTS for _ in (0, 1)]
    for row, (prompt, seed) in enumerate(calibration.rows):
        own = pipe(
            prompt,
            num_inference_steps=4,
            height=size,
            width=size,
            guidance_scale=3.0,
            output_type="pt",
            generator=torch.Generator().manual_seed(seed),
            **extra,
        ).images
        assert torch.allclose(own[0], uncached.images[row], atol=1e-5), (family, row)
    full = ecad.full_schedule(pipe, 4)
    assert torch.equal(generator(full).images, uncached.images)
    bits = full.recompute.clone()
    bits[1:] = False
    cached = generator(full.like(bits))
    assert not torch.equal(cached.images, uncached.images)
    generator.close()
    assert ecad.active_cache(pipe) is None
