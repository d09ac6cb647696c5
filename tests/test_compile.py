"""torch.compile with ecad: no recompilation per step or per schedule, and the same images as eager."""

import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter
from tiny_pipelines import tiny_pixart_pipeline

import ecad


def generate(pipe):
    return pipe(["a w1"], num_inference_steps=6, height=16, width=16, generator=torch.Generator().manual_seed(0),
                output_type="pt", use_resolution_binning=False, max_sequence_length=8).images


def schedules(pipe):
    full = ecad.full_schedule(pipe, 6)
    generator = torch.Generator().manual_seed(0)
    return [full.like(torch.rand(full.shape, generator=generator) < d) for d in (0.5, 0.3)]


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


def test_compiled_transformer_compiles_once_for_all_steps_and_schedules():
    pipe, (first, second), (eager_first, eager_second) = eager_run()
    counter = CompileCounter()
    eager_transformer = pipe.transformer
    with ecad.enable_cache(pipe, first) as handle:
        pipe.transformer = torch.compile(eager_transformer, backend=counter)
        try:
            assert torch.equal(generate(pipe), eager_first)
            compiled_frames = counter.frame_count
            assert compiled_frames > 0
            assert torch.equal(generate(pipe), eager_first)
            handle.set_schedule(second)
            assert torch.equal(generate(pipe), eager_second)
            assert counter.frame_count == compiled_frames  # six steps, two generations, two schedules: no recompiles
        finally:
            pipe.transformer = eager_transformer


def test_enable_cache_on_an_already_compiled_transformer():
    """The usual diffusers recipe, ``pipe.transformer = torch.compile(pipe.transformer)`` first, then ecad: the
    hooks go on the wrapped modules, the images equal eager caching, and later generations do not recompile."""
    pipe, (first, second), (eager_first, eager_second) = eager_run()
    counter = CompileCounter()
    eager_transformer = pipe.transformer
    pipe.transformer = torch.compile(eager_transformer, backend=counter)
    try:
        with ecad.enable_cache(pipe, first) as handle:
            assert handle.transformer is eager_transformer
            assert ecad.model_layout(pipe).block_names == ecad.model_layout(eager_transformer).block_names
            assert torch.equal(generate(pipe), eager_first)
            compiled_frames = counter.frame_count
            assert compiled_frames > 0
            handle.set_schedule(second)
            assert torch.equal(generate(pipe), eager_second)
            assert counter.frame_count == compiled_frames
        assert not hasattr(eager_transformer, "_diffusers_hook")  # disabled: no registry left on the wrapped module
    finally:
        pipe.transformer = eager_transformer
