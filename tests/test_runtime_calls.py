"""The runtime across pipeline calls and at its edges: every call starts a new generation (after an aborted call, in
img2img calls that start at a lower timestep), resampling back and forth, float16 caches of tuple outputs, and the
errors for a foreign schedule or a missing timestep."""

import itertools
from types import SimpleNamespace

import pytest
import torch
from diffusers import FluxImg2ImgPipeline
from tiny_pipelines import tiny_flux_pipeline, tiny_pixart_pipeline, tiny_sd3_pipeline

import ecad
from ecad import ScheduleError

STEPS = 6


class Abort(Exception):
    """Raised from a step-end callback: the call stops mid-generation, leaving the caches of an unfinished one."""


def abort_at(step):
    def callback(pipe, index, timestep, tensors):
        if index == step:
            raise Abort
        return tensors

    return callback


def interrupt_at(step):
    """diffusers' own way to stop a call: the loop skips its remaining steps."""

    def callback(pipe, index, timestep, tensors):
        if index == step:
            pipe._interrupt = True
        return tensors

    return callback


def random_schedule(target, density=0.4, seed=0, steps=STEPS):
    full = ecad.full_schedule(target, steps)
    return full.like(torch.rand(full.shape, generator=torch.Generator().manual_seed(seed)) < density)


@pytest.fixture(scope="module")
def pixart():
    return tiny_pixart_pipeline(num_layers=2)


def pixart_images(pipe, steps=STEPS, **kwargs):
    return pipe(
        ["a w1", "w2"],
        num_inference_steps=steps,
        height=16,
        width=16,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        use_resolution_binning=False,
        max_sequence_length=8,
        **kwargs,
    ).images


@pytest.fixture(scope="module")
def flux():
    text_to_image = tiny_flux_pipeline()
    image_to_image = FluxImg2ImgPipeline(**text_to_image.components)
    image_to_image.set_progress_bar_config(disable=True)
    return text_to_image, image_to_image


INIT_IMAGE = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))


def flux_images(pipe, strength=None, **kwargs):
    extra = {} if strength is None else {"image": INIT_IMAGE, "strength": strength}
    return pipe(
        "w1 w2",
        num_inference_steps=STEPS,
        height=16,
        width=16,
        guidance_scale=3.5,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        max_sequence_length=8,
        **extra,
        **kwargs,
    ).images


@pytest.mark.parametrize("stop", [abort_at, interrupt_at], ids=["exception", "interrupt"])
def test_a_call_after_a_stopped_one_is_a_fresh_generation(pixart, stop):
    schedule = random_schedule(pixart)
    with ecad.enable_cache(pixart, schedule):
        fresh = pixart_images(pixart)
    with ecad.enable_cache(pixart, schedule):
        try:
            pixart_images(pixart, callback_on_step_end=stop(3))
        except Abort:
            pass
        assert torch.equal(pixart_images(pixart), fresh)


def test_img2img_after_an_aborted_call_is_a_fresh_generation(flux):
    """The bug this guards against: the aborted call stopped at a timestep above the img2img call's first one, so the
    timestep rule alone took the img2img call for the continuation of the aborted generation."""
    text_to_image, image_to_image = flux
    schedule = random_schedule(text_to_image, seed=1)
    with ecad.enable_cache(image_to_image, schedule):
        fresh = flux_images(image_to_image, strength=0.5)
    with ecad.enable_cache(image_to_image, schedule) as handle:
        with pytest.raises(Abort):
            flux_images(text_to_image, callback_on_step_end=abort_at(1))
        assert handle.state.step == 1  # the aborted generation's caches are still held
        assert torch.equal(flux_images(image_to_image, strength=0.5), fresh)


def test_img2img_runs_the_schedules_last_steps(flux):
    """Strength 0.5 of 6 steps runs trajectory steps 3..5: its first call computes everything (nothing is cached),
    the next ones what rows 4 and 5 say; pruning still changes no bit."""
    text_to_image, image_to_image = flux
    schedule = random_schedule(text_to_image, seed=2)
    bits, exists = schedule.effective(), schedule.exists
    computed_before_call = []
    with ecad.enable_cache(image_to_image, schedule, prune=False) as handle:
        watch = image_to_image.transformer.register_forward_pre_hook(
            lambda *_: computed_before_call.append(handle.counts["computed"])
        )
        try:
            unpruned = flux_images(image_to_image, strength=0.5)
        finally:
            watch.remove()
        computed_before_call.append(handle.counts["computed"])
    per_call = [b - a for a, b in itertools.pairwise(computed_before_call)]
    assert per_call == [int(exists.sum()), int(bits[4].sum()), int(bits[5].sum())]
    with ecad.enable_cache(image_to_image, schedule):
        assert torch.equal(flux_images(image_to_image, strength=0.5), unpruned)
    # rows before the begin index do not matter; the rows it runs do
    early = bits.clone()
    early[1:3] = ~early[1:3]
    late = bits.clone()
    late[5] = ~late[5]
    with ecad.enable_cache(image_to_image, schedule.like(early), prune=False):
        assert torch.equal(flux_images(image_to_image, strength=0.5), unpruned)
    with ecad.enable_cache(image_to_image, schedule.like(late), prune=False):
        assert not torch.equal(flux_images(image_to_image, strength=0.5), unpruned)


def test_disable_restores_the_scheduler(pixart):
    scheduler = pixart.scheduler
    ecad.enable_cache(pixart, random_schedule(pixart))
    ecad.enable_cache(pixart, random_schedule(pixart, seed=3))  # replaces: one wrapper, not two
    assert "set_timesteps" in scheduler.__dict__
    ecad.disable_cache(pixart)
    assert "set_timesteps" not in scheduler.__dict__
    with ecad.enable_cache(pixart, random_schedule(pixart)):
        pass
    assert "set_timesteps" not in scheduler.__dict__


def test_resample_goes_back_to_the_schedules_own_step_count(pixart):
    schedule = random_schedule(pixart, seed=4)
    with ecad.enable_cache(pixart, schedule):
        own = pixart_images(pixart)
    with ecad.enable_cache(pixart, schedule.resample(8)):
        resampled = pixart_images(pixart, steps=8)
    with ecad.enable_cache(pixart, schedule, resample=True) as handle:
        assert torch.equal(pixart_images(pixart, steps=8), resampled)
        assert handle.state.active.num_steps == 8
        assert torch.equal(pixart_images(pixart), own)
        assert handle.state.active is schedule


def test_a_call_resampled_at_its_start_runs_the_resampled_plans_from_its_first_step(pixart):
    """A loop that only sets the scheduler's timesteps (no begin index, which would start the generation again): the
    schedule resampled at that check runs from step 0, not the plans of the schedule it replaced. Here those differ:
    the 7-step schedule forecasts at a row that resampling to 4 steps drops, so only it keeps output histories."""
    full = ecad.full_schedule(pixart, 7)
    actions = torch.ones(full.shape, dtype=torch.uint8)
    actions[2], actions[5] = 0, 2  # reuse at row 2 (the 4-step schedule's step 1), forecast at row 5 (dropped)
    schedule = full.with_actions(actions * full.exists)
    assert schedule.history_needed().any() and not schedule.resample(4).history_needed().any()
    target = SimpleNamespace(transformer=pixart.transformer, scheduler=pixart.scheduler)

    def loop():
        latents = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0))
        text = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1))
        pixart.scheduler.set_timesteps(4)
        with torch.no_grad():
            for t in pixart.scheduler.timesteps:
                out = pixart.transformer(latents, encoder_hidden_states=text, timestep=t.expand(1), return_dict=False)
                latents = pixart.scheduler.step(out[0][:, :4], t, latents, return_dict=False)[0]
        return latents

    with ecad.enable_cache(target, schedule.resample(4)):
        expected = loop()
    with ecad.enable_cache(target, schedule, resample=True) as handle:
        assert torch.equal(loop(), expected)
        assert handle.counts["reused"] > 0 and handle.state.active.num_steps == 4


def test_set_schedule_with_a_foreign_layout_is_refused_and_keeps_the_schedule(pixart):
    schedule = random_schedule(pixart, seed=6)
    with ecad.enable_cache(pixart, schedule):
        expected = pixart_images(pixart)
    foreign = ecad.CacheSchedule.from_array(torch.ones(STEPS, 5, 3))
    with ecad.enable_cache(pixart, schedule) as handle:
        with pytest.raises(ScheduleError, match=r"schedule has 5 blocks \(0\.\.4\) but PixArtTransformer2DModel has 2"):
            handle.set_schedule(foreign)
        assert handle.schedule is schedule
        assert torch.equal(pixart_images(pixart), expected)


@pytest.mark.parametrize(
    "setting",
    [{"resample": True}, {"prune": False}, {"cache_dtype": torch.float16}, {"forecast_unit": "timestep"}],
    ids=lambda s: next(iter(s)),
)
def test_settings_beside_a_cache_config_are_refused_and_leave_the_model_as_it_was(pixart, setting):
    config = ecad.CacheConfig(random_schedule(pixart, seed=7))
    name = next(iter(setting))
    with pytest.raises(TypeError, match=rf"enable_cache got {name} beside a CacheConfig.*dataclasses\.replace"):
        ecad.enable_cache(pixart, config, **setting)
    assert ecad.active_cache(pixart) is None
    with ecad.enable_cache(pixart, config) as handle:  # the config alone is taken as it is
        assert handle.state.resample is False and handle.state.prune is True
    with ecad.enable_cache(pixart, config.schedule, **setting) as handle:  # beside a bare schedule, each is used
        state = handle.state
        used = {
            "resample": state.resample,
            "prune": state.prune,
            "cache_dtype": state.outputs.dtype,
            "forecast_unit": state.forecast_unit,
        }
        assert used[name] == setting[name]


def test_a_transformer_call_without_timestep_is_a_clear_error(pixart):
    transformer = pixart.transformer
    with ecad.enable_cache(transformer, random_schedule(pixart)):
        with pytest.raises(ScheduleError, match="needs the transformer's 'timestep' argument"):
            transformer(torch.randn(1, 4, 8, 8), encoder_hidden_states=torch.randn(1, 3, 32))
        with pytest.raises(ScheduleError, match="needs the transformer's 'timestep' argument"):
            transformer(torch.randn(1, 4, 8, 8), encoder_hidden_states=torch.randn(1, 3, 32), timestep=None)


def test_bare_transformer_after_an_aborted_loop_needs_reset(pixart):
    """Without a pipeline the timestep is the only signal: a loop that starts below where an aborted one stopped
    continues it, as documented; ``handle.reset()`` starts a new generation."""
    transformer = pixart.transformer
    torch.manual_seed(0)
    x, text = torch.randn(1, 4, 8, 8), torch.randn(1, 3, 32)

    @torch.no_grad()
    def loop(timesteps):
        out = x
        for t in timesteps:
            out = (
                out
                - 0.1 * transformer(out, encoder_hidden_states=text, timestep=t.reshape(1), return_dict=False)[0][:, :4]
            )
        return out

    timesteps = torch.linspace(900, 100, STEPS)
    with ecad.enable_cache(transformer, random_schedule(pixart, seed=7)) as handle:
        fresh = loop(timesteps[2:])
        handle.reset()
        loop(timesteps[:1])  # aborted after one step at 900
        assert handle.state.step == 0
        continued = loop(timesteps[2:])
        handle.reset()
        assert torch.equal(loop(timesteps[2:]), fresh)
    assert not torch.equal(continued, fresh)


@pytest.mark.parametrize("build", [tiny_flux_pipeline, tiny_sd3_pipeline], ids=["flux", "sd3"])
def test_half_precision_cache_of_tuple_outputs(build):
    """FLUX's and SD3's joint attention return (image, text): both are kept in float16 and replayed in float32."""
    pipe = build()
    schedule = random_schedule(pipe, density=0.3, seed=8, steps=4)

    def run(handle, seen):
        def at_last_step(pipe, index, timestep, tensors):  # FLUX empties its stateful hooks when a call ends
            if index == 3:
                seen["bytes"] = handle.cache_bytes()
                seen["kept"] = handle.state.outputs.kept()
            return tensors

        return pipe(
            ["w1 w2", "w3"],
            num_inference_steps=4,
            height=16,
            width=16,
            guidance_scale=3.5,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
            max_sequence_length=8,
            callback_on_step_end=at_last_step,
        ).images

    full, half = {}, {}
    with ecad.enable_cache(pipe, schedule) as handle:
        full_precision = run(handle, full)
    replayed = []
    watch = pipe.transformer.transformer_blocks[0].attn.register_forward_hook(lambda _m, _i, out: replayed.append(out))
    try:
        with ecad.enable_cache(pipe, schedule, cache_dtype=torch.float16) as handle:
            half_precision = run(handle, half)
    finally:
        watch.remove()
    tensors = [t for value in half["kept"] for t in (value if isinstance(value, tuple) else (value,)) if t is not None]
    # each cast tensor has its own float16 storage; float32 outputs may be views of larger buffers (cache_bytes counts
    # whole storages), so half precision holds at most half
    assert half["bytes"] == sum(2 * t.numel() for t in tensors) <= full["bytes"] // 2
    assert any(isinstance(value, tuple) for value in half["kept"]) and all(t.dtype == torch.float16 for t in tensors)
    assert all(t.dtype == torch.float32 for out in replayed for t in out if t is not None)
    assert half_precision.dtype == full_precision.dtype and (half_precision - full_precision).abs().max() < 1e-2
    assert not torch.equal(half_precision, full_precision)  # the replayed outputs really were rounded
