"""torch.compile with ecad: no recompilation per step or per schedule, and the same images as eager."""

import dataclasses

import pytest
import torch
import torch._dynamo
from tiny_pipelines import (
    tiny_flux_pipeline,
    tiny_pixart_pipeline,
    tiny_sana_pipeline,
    tiny_sana_transformer,
    tiny_sd3_pipeline,
)
from torch._dynamo.testing import CompileCounter
from torch._dynamo.utils import counters

import ecad
from ecad.models.macs import count_macs
from ecad.schedule.heuristics import fora

pytestmark = pytest.mark.compile


def generate(pipe):
    return pipe(
        ["a w1"],
        num_inference_steps=6,
        height=16,
        width=16,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        use_resolution_binning=False,
        max_sequence_length=8,
    ).images


# A forecast's weights are Python floats eager and float64 tensors compiled (so that they never recompile): the
# sums may round differently. Measured with the mixed schedules below (whole model, 1 thread), images in [0, 1]: at
# most 4.8e-7 (Sana; FLUX 3.0e-7, SD3 3.9e-7, PixArt 0), while the schedules change the images by 3.6e-3 and more.
FORECAST_TOLERANCE = 5e-6


def schedules(pipe):
    """A reuse schedule and a three-action one (forecasts too)."""
    full = ecad.full_schedule(pipe, 6)
    generator = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 3, full.shape, generator=generator, dtype=torch.uint8)
    return [full.like(torch.rand(full.shape, generator=generator) < 0.5), full.with_actions(actions)]


def eager_run():
    """A tiny pipeline, two schedules and the eager images under each: what compiled runs must reproduce."""
    pipe = tiny_pixart_pipeline(num_layers=3)
    first, second = schedules(pipe)
    images = []
    for schedule in (first, second):
        with ecad.enable_cache(pipe, schedule):
            images.append(generate(pipe))
    torch._dynamo.reset()
    return pipe, (first, second), images


def whole_graphs(handle, passes=1):
    """What whole-model compilation may compile under the handle's schedule: one graph per step plan and pass."""
    return handle.state.book.distinct()[0] * passes


@torch._dynamo.config.patch(fail_on_recompile_limit_hit=True)  # else a frame past the limit runs eagerly, unseen
def test_compiled_transformer_compiles_once_per_step_plan_and_never_again():
    """``torch.compile(transformer, fullgraph=True)`` after ``enable_cache``: no graph break, the eager images, at most
    one graph per distinct step plan; a second generation compiles nothing, nor does a schedule seen before."""
    pipe, (first, second), (eager_first, eager_second) = eager_run()
    counter = CompileCounter()
    eager_transformer = pipe.transformer
    with ecad.enable_cache(pipe, first) as handle:
        pipe.transformer = torch.compile(eager_transformer, backend=counter, fullgraph=True)
        try:
            assert torch.equal(generate(pipe), eager_first)
            compiled_frames = counter.frame_count
            assert 0 < compiled_frames <= whole_graphs(handle)
            with torch._dynamo.config.patch(error_on_recompile=True):  # a failing guard raises, even past the limit
                assert torch.equal(generate(pipe), eager_first)
            handle.set_schedule(second)  # its plans are new: compiled once each, within its own bound
            assert torch.allclose(generate(pipe), eager_second, atol=FORECAST_TOLERANCE, rtol=0)
            assert counter.frame_count - compiled_frames <= whole_graphs(handle)
            with torch._dynamo.config.patch(error_on_recompile=True):
                assert torch.allclose(generate(pipe), eager_second, atol=FORECAST_TOLERANCE, rtol=0)
                handle.set_schedule(first)
                assert torch.equal(generate(pipe), eager_first)
        finally:
            pipe.transformer = eager_transformer


def test_enable_cache_on_an_already_compiled_transformer():
    """The usual diffusers recipe, ``pipe.transformer = torch.compile(pipe.transformer)`` first, then ecad: the
    hooks go on the wrapped modules, the images equal eager caching, and later generations do not recompile."""
    pipe, (first, second), (eager_first, eager_second) = eager_run()
    counter = CompileCounter()
    eager_transformer = pipe.transformer
    pipe.transformer = torch.compile(eager_transformer, backend=counter, fullgraph=True)
    try:
        with ecad.enable_cache(pipe, first) as handle:
            assert handle.transformer is eager_transformer
            assert ecad.model_layout(pipe).block_names == ecad.model_layout(eager_transformer).block_names
            assert torch.equal(generate(pipe), eager_first)
            compiled_frames = counter.frame_count
            assert compiled_frames > 0
            handle.set_schedule(second)
            assert torch.allclose(generate(pipe), eager_second, atol=FORECAST_TOLERANCE, rtol=0)
            frames = counter.frame_count
            assert torch.allclose(generate(pipe), eager_second, atol=FORECAST_TOLERANCE, rtol=0)
            assert counter.frame_count == frames
        assert not hasattr(eager_transformer, "_diffusers_hook")  # disabled: no registry left on the wrapped module
    finally:
        pipe.transformer = eager_transformer


def test_cost_table_of_a_pipeline_with_a_compiled_transformer_equals_the_eager_one():
    """``count_macs(pipe)`` (and so ``ecad macs``, the search, the benchmarks) observes the call through a
    ``torch.compile`` wrapper and counts the module inside it: the same table as the eager pipeline's."""
    pipe = tiny_pixart_pipeline(num_layers=2)
    eager = count_macs(pipe, 16, 16)
    eager_transformer = pipe.transformer
    pipe.transformer = torch.compile(eager_transformer, backend="eager")
    try:
        compiled = count_macs(pipe, 16, 16)
    finally:
        pipe.transformer = eager_transformer
    for field in dataclasses.fields(eager):  # shapes observed, per-component MACs, inputs, outside work
        mine, theirs = getattr(compiled, field.name), getattr(eager, field.name)
        assert torch.equal(mine, theirs) if isinstance(theirs, torch.Tensor) else mine == theirs, field.name
    assert compiled.full_step_macs > 0


# Inductor generates fused C++ kernels that round differently from eager (other operation order and fusion,
# vectorised reductions): not bit-exact, with or without ecad. Measured on this 1-block model (1 thread), images in
# [0, 1]: compiled minus eager at most 4.2e-7 uncached and 5.7e-7 under the schedule below. The tolerance is ~9x
# that, far below one 8-bit level (3.9e-3) and the schedule's own effect (6.5e-5).
INDUCTOR_TOLERANCE = 5e-6


def test_inductor_compiled_transformer_with_ecad_matches_eager_and_never_recompiles():
    """A real Inductor compile on the CPU (C++ kernels via the system compiler) of the smallest tiny pipeline:
    1 block, 3 steps, whole model with ``fullgraph=True``. Compiled ecad differs from eager ecad no more than the
    compiled uncached model differs from the eager one (both measured here); a second generation compiles nothing."""
    import shutil

    from torch._dynamo.testing import CompileCounterWithBackend

    if shutil.which("g++") is None and shutil.which("gcc") is None:
        pytest.skip("Inductor's CPU backend needs a C++ compiler (g++ or gcc) on PATH")
    pipe = tiny_pixart_pipeline(num_layers=1)

    def run():
        return pipe(
            ["a w1"],
            num_inference_steps=3,
            height=16,
            width=16,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
            use_resolution_binning=False,
            max_sequence_length=8,
        ).images

    full = ecad.full_schedule(pipe, 3)
    schedule = full.like(torch.tensor([[[1, 1, 1]], [[1, 0, 1]], [[0, 1, 0]]]))
    uncached = run()
    with ecad.enable_cache(pipe, schedule):
        eager = run()
    assert (eager - uncached).abs().max() > 5 * INDUCTOR_TOLERANCE  # the schedule changes the images
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("inductor")
    ecad.compile_transformer(pipe, "whole", backend=counter, fullgraph=True)
    try:
        compiled_uncached = run()
        torch._dynamo.reset()
        with ecad.enable_cache(pipe, schedule) as handle:
            compiled = run()
            frames = counter.frame_count
            assert torch.equal(run(), compiled)  # a second generation: same kernels, same bits
            assert counter.frame_count == frames
            assert handle.counts["reused"] > 0
    finally:
        decompile(pipe.transformer)
        torch._dynamo.reset()
    assert (compiled_uncached - uncached).abs().max() <= INDUCTOR_TOLERANCE
    assert (compiled - eager).abs().max() <= INDUCTOR_TOLERANCE


# ---------------------------------------------------------------- every family, both ways of compiling, fullgraph
FAMILY_STEPS = 6


def family_pipeline(family):
    """``(pipeline, run, passes)``; sizes with several latent tokens (a one-token dimension's stride is arbitrary, so
    dynamo would see layouts that differ from call to call)."""
    common = {"num_inference_steps": FAMILY_STEPS, "output_type": "pt", "max_sequence_length": 8}
    if family == "pixart":
        pipe = tiny_pixart_pipeline(num_layers=3)
        kwargs = {"height": 32, "width": 32, "use_resolution_binning": False, "clean_caption": False}
    elif family.startswith("flux"):
        pipe = tiny_flux_pipeline()
        kwargs = {"height": 32, "width": 32, "guidance_scale": 3.5}
        if family == "flux-true-cfg":
            kwargs |= {"negative_prompt": ["w5 w6"], "true_cfg_scale": 2.0}
    elif family == "sd3":
        pipe = tiny_sd3_pipeline()
        kwargs = {"height": 32, "width": 32, "guidance_scale": 4.0}
    else:
        pipe = tiny_sana_pipeline()
        kwargs = {"height": 64, "width": 64, "use_resolution_binning": False, "complex_human_instruction": None}

    def run():
        return pipe(["w1 w2"], generator=torch.Generator().manual_seed(0), **common, **kwargs).images

    return pipe, run, 2 if family == "flux-true-cfg" else 1


def family_schedules(pipe):
    """FORA-3 and a searched-style mixed schedule: random per (step, block, component), forecasts included."""
    layout = ecad.model_layout(pipe)
    mixed = ecad.full_schedule(pipe, FAMILY_STEPS)
    actions = torch.randint(0, 3, mixed.shape, generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return {"fora-3": fora(layout, FAMILY_STEPS, 3), "mixed": mixed.with_actions(actions)}


def compiled_run(pipe, run, mode, schedule=None):
    """Compile the transformer (``CompileCounter``: dynamo's graphs, run eagerly) with ``fullgraph=True``, then run
    two generations: ``(images, graphs, graphs compiled by the second generation, handle)``."""
    torch._dynamo.reset()
    counters.clear()
    counter = CompileCounter()
    handle = ecad.enable_cache(pipe, schedule) if schedule is not None else None
    ecad.compile_transformer(pipe, mode, backend=counter, fullgraph=True)
    try:
        images = run()
        graphs = counter.frame_count
        with torch._dynamo.config.patch(error_on_recompile=True):
            assert torch.equal(run(), images)
        assert not counters["graph_break"]
        return images, graphs, counter.frame_count - graphs, handle
    finally:
        decompile(pipe.transformer)
        if handle is not None:
            handle.disable()


def decompile(transformer):
    for module in transformer.modules():
        module._compiled_call_impl = None


@pytest.fixture(scope="module", params=["pixart", "flux", "flux-true-cfg", "sd3", "sana"])
def family(request):
    return request.param, *family_pipeline(request.param)


@pytest.mark.parametrize("mode", ["whole", "regional"])
@torch._dynamo.config.patch(fail_on_recompile_limit_hit=True)
def test_fullgraph_compiles_every_family_with_no_break_and_no_recompile(family, mode):
    """``fullgraph=True`` whole and regional, under FORA-3 and a mixed schedule: the eager images (bit for bit; with
    forecasts, within the weights' rounding), no graph break, nothing compiled by the second generation, and at most
    one graph per distinct step plan and pass (whole) or per distinct block plan and the input layouts the uncached
    model's blocks compile for (regional)."""
    name, pipe, run, passes = family
    _, uncached_graphs, _, _ = compiled_run(pipe, run, mode)
    for kind, schedule in family_schedules(pipe).items():
        with ecad.enable_cache(pipe, schedule):
            eager = run()
        images, graphs, second, handle = compiled_run(pipe, run, mode, schedule)
        assert second == 0, (name, kind)
        if schedule.forecast.any():
            assert torch.allclose(images, eager, atol=FORECAST_TOLERANCE, rtol=0), (name, kind)
        else:
            assert torch.equal(images, eager), (name, kind)
        step_plans, block_plans = handle.state.book.distinct()
        bound = step_plans * passes if mode == "whole" else uncached_graphs * block_plans
        assert 0 < graphs <= bound, (name, kind, graphs, bound)
        assert handle.counts["reused"] + handle.counts["forecast"] > 0


def test_a_fifty_step_schedule_whose_steps_all_differ_compiles_each_once():
    """Whole-model compilation compiles one graph per distinct step plan: a searched 50-step schedule can have 50,
    past dynamo's default recompile limit of 8 (past it, frames would silently run eagerly; here that fails).
    ``enable_cache`` raises the limit to fit the schedule."""
    pipe = tiny_pixart_pipeline(num_layers=2)
    steps = 50
    full = ecad.full_schedule(pipe, steps)
    bits = torch.tensor([[(k >> i) & 1 for i in range(6)] for k in range(steps)], dtype=torch.bool).reshape(steps, 2, 3)
    bits[0] = True  # 63: no other row computes everything
    schedule = full.like(bits)

    def run():
        return pipe(
            ["a w1"],
            num_inference_steps=steps,
            height=32,
            width=32,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
            use_resolution_binning=False,
            max_sequence_length=8,
        ).images

    with ecad.enable_cache(pipe, schedule):
        eager = run()
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True, recompile_limit=8):
        images, graphs, second, handle = compiled_run(pipe, run, "whole", schedule)
        assert torch._dynamo.config.recompile_limit >= steps
    assert handle.state.book.distinct()[0] == steps
    assert graphs == steps and second == 0
    assert torch.equal(images, eager)


def test_a_bare_transformer_compiles_with_the_timestep_rule_behind_one_break():
    """Without a pipeline the step comes from each call's timestep, read eagerly: regional compilation keeps that
    outside the compiled blocks (``fullgraph=True`` holds), whole-model compilation breaks the graph there once per
    call. Both give the eager result, through the generic adapter, and a larger timestep still starts a new
    generation."""
    torch.manual_seed(0)
    transformer = tiny_sana_transformer()
    adapter = ecad.GenericAdapter("transformer_blocks", ("attn1", "attn2", "ff"))
    latents, text = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 32)

    @torch.no_grad()
    def run():
        x = latents
        for t in torch.linspace(999, 250, 4):
            x = x - 0.2 * transformer(x, text, timestep=t.expand(2), return_dict=False)[0]
        return x

    full = ecad.full_schedule(transformer, 4, adapter=adapter)
    schedule = full.like(torch.rand(full.shape, generator=torch.Generator().manual_seed(0)) < 0.5)
    with ecad.enable_cache(transformer, schedule, adapter=adapter):
        eager = run()
    for mode, fullgraph in (("regional", True), ("whole", False)):
        torch._dynamo.reset()
        counters.clear()
        counter = CompileCounter()
        with ecad.enable_cache(transformer, schedule, adapter=adapter) as handle:
            ecad.compile_transformer(transformer, mode, adapter=adapter, backend=counter, fullgraph=fullgraph)
            try:
                assert torch.equal(run(), eager), mode
                assert torch.equal(run(), eager), mode  # a new generation: the first timestep is larger
                assert handle.counts["reused"] > 0
            finally:
                decompile(transformer)
        assert bool(counters["graph_break"]) == (mode == "whole"), mode
