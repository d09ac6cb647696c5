"""Wan 2.2's two experts (a tiny WanPipeline with ``transformer``, ``transformer_2`` and ``boundary_ratio``): one
schedule over the whole trajectory, each expert reading its own steps' rows, and the cost of both."""

from __future__ import annotations

import pytest
import torch
from tiny_pipelines import tiny_wan_pipeline

import ecad
from ecad.cost.table import experts_step_macs
from ecad.models.macs import count_macs
from ecad.runtime.experts import expert_steps, split_schedule

STEPS = 6


@pytest.fixture(scope="module")
def pipe():
    return tiny_wan_pipeline()


def frames(pipe) -> torch.Tensor:
    return pipe(
        "w1 w2",
        num_inference_steps=STEPS,
        height=16,
        width=16,
        num_frames=5,
        guidance_scale=4.0,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        max_sequence_length=8,
    ).frames


def calls(pipe) -> list[int]:
    """Which expert each transformer call of a generation went to."""
    seen: list[int] = []
    handles = [
        getattr(pipe, name).register_forward_pre_hook(lambda *_, e=e: seen.append(e))
        for e, name in enumerate(("transformer", "transformer_2"))
    ]
    try:
        frames(pipe)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_the_split_follows_the_pipeline(pipe):
    experts = expert_steps(pipe, STEPS)
    assert experts == [0, 0, 0, 0, 1, 1]
    assert calls(pipe) == [e for e in experts for _ in range(2)]  # conditional and unconditional pass per step


def test_all_recompute_is_bit_exact_over_both_experts(pipe):
    reference = frames(pipe)
    with ecad.enable_cache_experts(pipe, ecad.full_schedule(pipe, STEPS)) as handle:
        cached = frames(pipe)
    assert torch.equal(cached, reference)
    assert handle.counts["reused"] == 0
    assert handle.counts["computed"] == 2 * 6 * STEPS  # 2 blocks x 3 components x 2 passes x every step
    assert torch.equal(frames(pipe), reference)  # disabled: both experts are themselves again


def test_each_expert_reads_its_own_rows(pipe):
    full = ecad.full_schedule(pipe, STEPS)
    bits = full.recompute.clone()
    bits[1:4] = False  # expert 1 replays after its first step
    bits[5] = False  # expert 2 replays after its first step (row 4, which computes: nothing crosses the hand-over)
    schedule = full.like(bits)
    computed = {0: 0, 1: 0}
    handles = [
        getattr(pipe, name)
        .blocks[0]
        .attn1.register_forward_hook(lambda *_, e=e: computed.__setitem__(e, computed[e] + 1))
        for e, name in enumerate(("transformer", "transformer_2"))
    ]
    try:
        with ecad.enable_cache_experts(pipe, schedule) as handle:
            cached = frames(pipe)
    finally:
        for h in handles:
            h.remove()
    assert computed == {0: 2, 1: 2}  # each expert's attn1 ran at its own first row only, in both passes
    per_step = 2 * 6  # two passes x (2 blocks x 3 components)
    assert handle.counts["computed"] == per_step * 2  # rows 0 and 4
    assert handle.counts["reused"] == per_step * 4
    assert not torch.equal(cached, frames(pipe))


def test_the_cost_counts_both_experts_and_a_full_first_step_for_each(pipe):
    table = count_macs(pipe.transformer, 16, 16, batch_size=2, text_len=8, frames=5)
    full = ecad.full_schedule(pipe, STEPS)
    nothing = full.like(torch.zeros(full.shape, dtype=torch.bool))
    experts = expert_steps(pipe, STEPS)
    per_step = experts_step_macs(table, nothing, experts)
    assert per_step[0] == per_step[4] == table.full_step_macs  # each expert's first step computes in full
    assert per_step[1] == per_step[2] == per_step[3] == per_step[5] < table.full_step_macs
    first, second = split_schedule(nothing, experts)
    assert (first.num_steps, second.num_steps) == (4, 2)


def test_a_pipeline_with_one_transformer_is_sent_to_enable_cache():
    single = tiny_wan_pipeline(two_experts=False)
    with pytest.raises(ValueError, match="enable_cache"):
        ecad.enable_cache_experts(single, ecad.full_schedule(single, STEPS))
    reference = frames(single)  # Wan 2.1: one transformer, cached through its pipeline's scheduler
    full = ecad.full_schedule(single, STEPS)
    with ecad.enable_cache(single, full):
        assert torch.equal(frames(single), reference)
    bits = full.recompute.clone()
    bits[1::2] = False
    with ecad.enable_cache(single, full.like(bits)) as handle:
        assert not torch.equal(frames(single), reference)
    assert handle.counts["reused"] == 2 * 6 * (STEPS // 2)  # two passes x 6 components x the odd steps


def test_a_short_search_sees_both_experts(pipe, tmp_path):
    """The search encodes the whole trajectory; each candidate runs through both experts and is costed by both."""
    from search_support import FunctionExecutor, short_search

    table = count_macs(pipe.transformer, 16, 16, batch_size=2, text_len=8, frames=5)
    experts = expert_steps(pipe, STEPS)
    runs: list[int] = []

    def run(schedule):
        if schedule is None:
            return frames(pipe)
        with ecad.enable_cache_experts(pipe, schedule) as handle:
            output = frames(pipe)
        runs.append(handle.counts["computed"] + handle.counts["reused"])
        return output

    executor = FunctionExecutor(
        ecad.model_layout(pipe),
        float(table.full_step_macs * STEPS),
        run,
        lambda s: sum(experts_step_macs(table, s, experts)),
        (16, 16),
    )
    result = short_search(executor, tmp_path / "run", STEPS, "wan2.2-tiny")
    assert result.evaluations >= 4 and set(runs) == {2 * 6 * STEPS}  # every step of both experts decided each run
    assert min(row["cost"] for row in result.front) < executor.full_cost


def test_enable_cache_on_a_two_expert_pipeline_points_to_the_experts_call(pipe):
    """A plain enable_cache would cache only `transformer` and leave the low-noise expert uncached, unseen: refused
    with the call that serves both, and neither expert gets a hook."""
    schedule = ecad.full_schedule(pipe.transformer, STEPS)
    with pytest.raises(ValueError, match=r"enable_cache_experts\(pipe, schedule\)"):
        ecad.enable_cache(pipe, schedule)
    assert ecad.active_cache(pipe.transformer) is None and ecad.active_cache(pipe.transformer_2) is None
