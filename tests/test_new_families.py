"""The video and new image families on tiny bare transformers: the cost table at the real call's shapes, a short
NSGA-II search over each family's layout and cost, presets at their usual sizes. (Exactness, refusal of a foreign
schedule and the skip forwards for every plan run in tests/test_adapters.py over the same tiny models.)"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
from search_support import FunctionExecutor, short_search
from tiny_pipelines import NEW_FAMILIES, TEXT, tiny_z_image_pipeline
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

import ecad
from ecad.cli import main
from ecad.models.macs import count_macs


def _tensors(value) -> list[torch.Tensor]:
    return [value] if isinstance(value, torch.Tensor) else [t for item in value for t in _tensors(item)]


def _build(name):
    build, timestep_arg, timesteps, size, frames = NEW_FAMILIES[name]
    torch.manual_seed(0)
    model, inputs = build()
    return model, inputs, timestep_arg, timesteps, size, frames


def _real_macs(model, inputs) -> int:
    mapping = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *args, out_shape=None, **kwargs: (
            sdpa_flop_count(q, k, v)
        )
    }
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(**inputs)
    return sum(counter.get_flop_counts()["Global"].values()) // 2


@pytest.mark.parametrize("name", list(NEW_FAMILIES))
def test_full_step_macs_equal_flop_counter_over_one_real_call(name):
    model, inputs, timestep_arg, timesteps, size, frames = _build(name)
    table = count_macs(model, size, size, batch_size=2, text_len=TEXT, frames=frames)
    real = _real_macs(model, {**inputs, timestep_arg: torch.full((2,), timesteps[0]), "return_dict": False})
    assert table.full_step_macs == real
    assert bool((table.component_macs[table.exists] > 0).all())


@pytest.mark.parametrize("name", list(NEW_FAMILIES))
def test_predicted_step_macs_equal_what_the_runtime_runs(name):
    """Under a random schedule, the cost table's MACs of each step (replayed components' inputs left out by the skip
    forwards) equal FlopCounterMode over the call the runtime really makes at that step."""
    model, inputs, timestep_arg, timesteps, size, frames = _build(name)
    table = count_macs(model, size, size, batch_size=2, text_len=TEXT, frames=frames)
    full = ecad.full_schedule(model, len(timesteps))
    schedule = full.like(torch.rand(full.shape, generator=torch.Generator().manual_seed(7)) < 0.4)
    with ecad.enable_cache(model, schedule):
        measured = [
            _real_macs(model, {**inputs, timestep_arg: torch.full((2,), t), "return_dict": False}) for t in timesteps
        ]
    assert measured == table.step_macs(schedule)
    assert sum(measured) < table.full_step_macs * len(timesteps)


def test_hunyuan_video_counting_mode_keeps_each_row_length_on_the_meta_device_only():
    """Under the counting mode a meta mask selects every row and its negation none; real tensors index as usual."""
    from ecad.adapters.hunyuan_video import AllTokensValid

    rows, mask = torch.empty(6, 4, device="meta"), torch.zeros(6, device="meta", dtype=torch.bool)
    real = torch.arange(6.0)
    with AllTokensValid():
        assert [tuple(rows[m].shape) for m in (mask, ~mask, ~~mask)] == [(6, 4), (0, 4), (6, 4)]
        assert bool(torch.all(rows == 0))
        assert torch.equal(real[real > 3], torch.tensor([4.0, 5.0])) and real[~(real > 3)].shape == (4,)


def _bare_executor(name: str) -> tuple[FunctionExecutor, torch.nn.Module]:
    """The family's tiny transformer over a 4-step loop, costed by its cost table."""
    model, inputs, timestep_arg, timesteps, size, frames = _build(name)
    table = count_macs(model, size, size, batch_size=2, text_len=TEXT, frames=frames)
    calls = [{**inputs, timestep_arg: torch.full((2,), t), "return_dict": False} for t in timesteps]

    @torch.no_grad()
    def run(schedule):
        with ecad.enable_cache(model, schedule) if schedule is not None else contextlib.nullcontext():
            return torch.cat([t.flatten() for call in calls for t in _tensors(model(**call)[0])])

    executor = FunctionExecutor(
        ecad.model_layout(model), float(table.full_step_macs * len(calls)), run, table.schedule_macs, (size, size)
    )
    return executor, model


@pytest.mark.parametrize("name", list(NEW_FAMILIES))
def test_a_short_search_over_the_family_layout(name, tmp_path):
    executor, model = _bare_executor(name)
    result = short_search(executor, tmp_path / "run", 4, name)
    assert result.evaluations >= 4
    assert result.front and min(row["cost"] for row in result.front) < executor.full_cost  # cheaper than no caching
    cheapest = min(result.front, key=lambda row: row["cost"])
    schedule = ecad.CacheSchedule.load(tmp_path / "run" / cheapest["file"])
    with ecad.enable_cache(model, schedule) as handle:  # the saved schedule runs on the model
        executor.run(None)
    assert handle.counts["reused"] > 0


def test_z_image_in_its_pipeline_follows_the_scheduler_while_its_timestep_rises():
    pipe = tiny_z_image_pipeline()

    def run():
        return pipe(
            prompt_embeds=[torch.ones(TEXT, 16)],
            negative_prompt_embeds=[torch.zeros(TEXT, 16)],
            guidance_scale=3.0,
            height=32,
            width=32,
            num_inference_steps=4,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).images

    reference = run()
    full = ecad.full_schedule(pipe, 4)
    with ecad.enable_cache(pipe, full) as handle:
        assert torch.equal(run(), reference)
    assert handle.counts["computed"] == 4 * 4  # 2 blocks x 2 components x 4 steps, CFG in one batch
    bits = full.recompute.clone()
    bits[1:] = False
    with ecad.enable_cache(pipe, full.like(bits)) as handle:
        assert not torch.equal(run(), reference)
    assert handle.counts == {"computed": 4, "reused": 12, "forecast": 0}


NEW_PRESETS = [
    "wan2.1-t2v-1.3b",
    "wan2.1-t2v-14b",
    "wan2.2-t2v-a14b",
    "qwen-image",
    "flux2-dev",
    "hunyuanvideo-1.5",
    "ltx-2",
    "z-image-turbo",
]


@pytest.mark.slow  # building a real-size architecture on the meta device takes seconds
@pytest.mark.parametrize("arch", NEW_PRESETS)
def test_macs_cli_counts_every_new_preset(arch, capsys):
    video = arch.startswith(("wan", "hunyuan", "ltx"))
    assert (
        main(
            ["macs", "--arch", arch, "--height", "256", "--width", "256", "--json"]
            + (["--frames", "9"] if video else [])
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == (9 if video else 1) and report["full_macs"] > 0


def test_frames_are_refused_for_an_image_model(capsys):
    assert main(["macs", "--arch", "qwen-image", "--frames", "9"]) != 0
    assert "video models only" in capsys.readouterr().err


@pytest.mark.compile
@pytest.mark.parametrize("name", list(NEW_FAMILIES))
def test_regional_fullgraph_compilation_gives_the_eager_result(name):
    """Each block compiled with ``fullgraph=True`` (dynamo's graphs run eagerly: ``CompileCounter``) under a random
    schedule: the eager cached output bit for bit, no graph break, caching at work."""
    from torch._dynamo.testing import CompileCounter
    from torch._dynamo.utils import counters

    model, inputs, timestep_arg, timesteps, *_ = _build(name)
    calls = [{**inputs, timestep_arg: torch.full((2,), t), "return_dict": False} for t in timesteps]

    @torch.no_grad()
    def run():
        return [model(**call)[0] for call in calls]

    full = ecad.full_schedule(model, len(calls))
    schedule = full.like(torch.rand(full.shape, generator=torch.Generator().manual_seed(0)) < 0.5)
    with ecad.enable_cache(model, schedule):
        eager = run()
    torch._dynamo.reset()
    counters.clear()
    counter = CompileCounter()
    with ecad.enable_cache(model, schedule) as handle:
        ecad.compile_transformer(model, "regional", backend=counter, fullgraph=True)
        try:
            compiled = run()
        finally:
            for module in model.modules():
                module._compiled_call_impl = None
    assert all(torch.equal(a, b) for a, b in zip(_tensors(eager), _tensors(compiled), strict=True))
    assert counter.frame_count > 0 and not counters["graph_break"]
    assert handle.counts["reused"] > 0


class _RunsAll:
    """A block step where every component runs."""

    def runs(self, component):
        return True

    def compute(self, component, module, *args, **kwargs):
        return module(*args, **kwargs)


@pytest.mark.parametrize("per_token", [False, True])
def test_z_image_skip_forward_equals_the_block_with_both_modulations(per_token):
    """Z-Image Omni modulates noisy and clean tokens apart (``noise_mask``); the skip forward follows both ways."""
    from ecad.adapters.z_image import _forward

    model, *_ = _build("z-image")
    block = model.layers[0]
    x, conditioning = torch.randn(2, 6, 32), torch.randn(2, 32)
    kwargs = (
        {
            "noise_mask": torch.tensor([[1, 1, 0, 0, 1, 0]] * 2),
            "adaln_noisy": conditioning,
            "adaln_clean": torch.randn(2, 32),
        }
        if per_token
        else {"adaln_input": conditioning}
    )
    with torch.no_grad():
        assert torch.equal(_forward(block, _RunsAll(), x, None, None, **kwargs), block(x, None, None, **kwargs))
