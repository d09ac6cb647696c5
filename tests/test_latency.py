"""The latency cost model on a tiny transformer (no timing assertions beyond positivity and bookkeeping)."""

import torch
from tiny_pipelines import tiny_pixart_pipeline

import ecad
from ecad.latency import LatencyTable, measure_latency


def test_measure_latency_times_every_component_and_sums_schedules():
    pipe = tiny_pixart_pipeline(num_layers=2)
    table = measure_latency(pipe, 32, 32, text_len=8, repeats=3)
    assert table.block_names == ("0", "1") and table.component_names == ("attn1", "attn2", "ff")
    assert bool((table.component_seconds > 0).all()) and table.outside_seconds >= 0
    full = ecad.full_schedule(pipe, 5)
    assert table.step_seconds(full) == [table.full_step_seconds] * 5
    bits = full.recompute.clone()
    bits[1:] = False
    bits[2, 1, 0] = True
    steps = table.step_seconds(full.like(bits))
    assert steps[1] == table.outside_seconds
    assert steps[2] == table.outside_seconds + float(table.component_seconds[1, 0])
    again = LatencyTable.from_dict(table.to_dict())
    assert torch.equal(again.component_seconds, table.component_seconds)
    assert again.outside_seconds == table.outside_seconds and again.exists.tolist() == table.exists.tolist()
    assert ecad.active_cache(pipe) is None  # timing hooks are gone
