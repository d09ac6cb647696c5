"""The latency cost model on a tiny pipeline (no timing assertions beyond positivity and bookkeeping)."""

import pytest
import torch
from tiny_pipelines import tiny_pixart_pipeline

import ecad
from ecad.cost.latency import LatencyTable, measure_latency


def test_measure_latency_times_blocks_and_components_and_sums_schedules():
    pipe = tiny_pixart_pipeline(num_layers=2)
    table = measure_latency(pipe, 32, 32, guidance_scale=4.5, warmup=1, repeats=3)
    assert table.block_names == ("0", "1") and table.component_names == ("attn1", "attn2", "ff")
    assert table.batch_size == 2 and table.calls_per_step == 1  # one image, CFG batched: observed
    assert bool((table.replay_seconds > 0).all()) and bool((table.full_block_seconds > table.replay_seconds).all())
    assert bool((table.component_seconds >= 0).all()) and float(table.component_seconds.sum()) > 0
    assert table.outside_seconds > 0
    assert table.forecast_seconds is None  # measured without the third action: a forecast is priced as a reuse
    full = ecad.full_schedule(pipe, 5)
    assert table.step_seconds(full) == pytest.approx([table.full_step_seconds] * 5)
    bits = full.recompute.clone()
    bits[1:] = False
    bits[2, 1, 0] = True
    steps = table.step_seconds(full.like(bits))
    everything_replays = table.outside_seconds + float(table.replay_seconds.sum())
    assert steps[1] == pytest.approx(everything_replays)
    assert steps[2] == pytest.approx(everything_replays + float(table.component_seconds[1, 0]))
    again = LatencyTable.from_dict(table.to_dict())
    assert torch.equal(again.component_seconds, table.component_seconds)
    assert torch.equal(again.replay_seconds, table.replay_seconds) and again.feeds == table.feeds
    assert again.outside_seconds == table.outside_seconds and again.exists.tolist() == table.exists.tolist()
    assert ecad.active_cache(pipe) is None  # the measuring runtime and the timing hooks are gone


def test_forecasts_are_timed_and_priced_where_the_runtime_makes_them():
    pipe = tiny_pixart_pipeline(num_layers=2)
    table = measure_latency(pipe, 32, 32, guidance_scale=4.5, warmup=1, repeats=2, forecasts=True)
    assert table.forecast_seconds.shape == table.component_seconds.shape
    assert bool((table.forecast_seconds >= 0).all())  # a median difference to the all-replay block, clipped at 0
    full = ecad.full_schedule(pipe, 6)
    bits, forecast = full.recompute.clone(), torch.zeros_like(full.recompute)
    bits[1:] = False
    bits[1] = True  # two computed outputs (steps 0 and 1): forecasts from step 2 on extrapolate
    forecast[2, 0, 2] = forecast[3, 1, 0] = True
    schedule = full.like(bits, forecast)
    reuse = full.like(bits)
    steps, as_reuse = table.step_seconds(schedule), table.step_seconds(reuse)
    assert steps[2] == pytest.approx(as_reuse[2] + float(table.forecast_seconds[0, 2]))
    assert steps[3] == pytest.approx(as_reuse[3] + float(table.forecast_seconds[1, 0]))
    assert steps[4:] == pytest.approx(as_reuse[4:])
    early = full.like(torch.cat([bits[:1], torch.zeros_like(bits[1:])]), forecast)  # one computed output: a reuse
    assert table.step_seconds(early) == pytest.approx(table.step_seconds(full.like(early.recompute)))
    again = LatencyTable.from_dict(table.to_dict())
    assert torch.equal(again.forecast_seconds, table.forecast_seconds)
    assert LatencyTable.from_dict({**table.to_dict(), "forecast_seconds": None}).forecast_seconds is None
