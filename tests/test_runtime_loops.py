"""The caching runtime on a bare transformer driven by a hand-written denoising loop: no pipeline call marks where a
generation starts, so a larger timestep than the last call's must."""

import torch
from tiny_pipelines import tiny_pixart_transformer

import ecad

STEPS = 6


def denoise(transformer, seed=0):
    """A hand-written Euler-style loop over timesteps 999 down to 0, classifier-free guidance as a batch of 2."""
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    text = torch.randn(2, 5, 32, generator=generator)  # unconditional and conditional caption embeddings
    timesteps = torch.linspace(999, 0, STEPS)
    with torch.no_grad():
        for t in timesteps:
            noise = transformer(
                torch.cat([latents] * 2),
                encoder_hidden_states=text,
                timestep=t.expand(2),
                added_cond_kwargs={"resolution": None, "aspect_ratio": None},
            ).sample[:, :4]
            uncond, cond = noise.chunk(2)
            latents = latents - (uncond + 4.5 * (cond - uncond)) / STEPS
    return latents


def test_a_second_hand_written_loop_starts_a_new_generation():
    """Two loops in a row under one schedule: the second gives what a fresh run gives, not a replay of the first's
    kept outputs (nor a step count past the schedule's)."""
    torch.manual_seed(0)
    transformer = tiny_pixart_transformer(num_layers=3)
    full = ecad.full_schedule(transformer, STEPS)
    schedule = full.like(torch.rand(full.shape, generator=torch.Generator().manual_seed(0)) < 0.5)
    with ecad.enable_cache(transformer, schedule):
        fresh = denoise(transformer, seed=1)
    uncached = denoise(transformer, seed=1)
    assert not torch.equal(fresh, uncached)  # the schedule replays outputs: a replayed first run would show
    with ecad.enable_cache(transformer, schedule):
        first = denoise(transformer, seed=0)
        second = denoise(transformer, seed=1)
    assert not torch.equal(first, second)
    assert torch.equal(second, fresh)
