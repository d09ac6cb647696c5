"""Exact shared-prefix reuse: a generation evaluated with shared prefixes gives every candidate the images and
latents it gets alone (torch.equal), with fewer transformer calls."""

import torch
from tiny_pipelines import tiny_pixart_pipeline

import ecad
from ecad.generation import Calibration, CalibrationGenerator
from ecad.search.prefix import apply_prefix_replay, prefix_plan, remove_prefix_replay, runtime_table


def _schedules(layout, steps):
    """Candidates that share prefixes of several lengths (and one that shares only step 0)."""
    base = ecad.heuristics.fora(layout, steps, 2).recompute
    variants = [base.clone()]
    for step, block, component in [(5, 0, 1), (3, 2, 0), (5, 1, 2), (3, 2, 0), (1, 1, 1), (4, 0, 0), (2, 2, 2)]:
        bits = variants[-1 if step % 2 else 0].clone()
        bits[step, block, component] = ~bits[step, block, component]
        variants.append(bits)
    variants.append(torch.ones_like(base))  # no caching
    full = layout.full_schedule(steps)
    schedules = [full.like(b) for b in variants]
    # Forecasting candidates: the same bits as FORA-2 with every reuse a forecast (their kept histories differ from
    # step 0 on, so they share only what they really share), and two of those that differ from step 4 on.
    forecast = (~base).to(torch.int64) * 2 + base.to(torch.int64)
    late = forecast.clone()
    late[4:, 1] = 0  # block 1 reuses from step 4 on
    schedules += [
        full.with_actions(forecast),
        full.with_actions(late),
        full.with_actions(late).like(late == 1, late == 2),
    ]
    return list(dict.fromkeys(schedules))  # distinct, in order


def test_shared_prefixes_give_every_candidate_its_own_images_exactly():
    pipe = tiny_pixart_pipeline(num_layers=3, seed=1)
    layout = ecad.model_layout(pipe)
    steps = 6
    calibration = Calibration(
        ("a w1 w2", "w3 w4", "w5 a"),
        images_per_prompt=1,
        num_steps=steps,
        height=16,
        width=16,
        guidance_scale=4.5,
        batch_size=2,
    )  # CFG on, two pipeline calls
    generator = CalibrationGenerator(pipe, calibration)
    schedules = _schedules(layout, steps)
    alone = [generator(s) for s in schedules]
    generator.close()

    plan = prefix_plan([runtime_table(s, layout) for s in schedules])
    assert sorted(p.index for p in plan) == list(range(len(schedules)))
    binary = [p for p in plan if not schedules[p.index].forecast.any()]
    assert all(p.replay >= 1 for p in binary[1:])  # step 0 always computes: every candidate shares it
    # a forecast history changes what is kept from step 0 on: those share nothing with the binary candidates, and
    # the two forecasting ones share steps 0..3
    assert [p.replay for p in plan if schedules[p.index].forecast.any()] == [0, 4]
    hook = apply_prefix_replay(pipe.transformer)
    shared = {}
    for step in plan:
        hook.begin(step)
        shared[step.index] = generator(schedules[step.index])
    generator.close()
    for i, result in enumerate(alone):
        assert torch.equal(result.latents, shared[i].latents), i
        assert torch.equal(result.images, shared[i].images), i
    calls = hook.calls
    batches, total = 2, len(schedules) * steps * 2
    assert calls["computed"] + calls["replayed"] == total
    assert calls["replayed"] == batches * sum(p.replay for p in plan) > 0
    remove_prefix_replay(pipe.transformer)
    assert not hasattr(pipe.transformer, "_diffusers_hook")  # the model is as it was built


def test_the_plan_keeps_a_snapshot_where_a_later_candidate_branches():
    def table(*rows):
        return torch.tensor(rows, dtype=torch.bool).reshape(len(rows), 1, 1)

    tables = [table(1, 1, 0, 0), table(1, 0, 1, 1), table(1, 1, 0, 1), table(1, 1, 1, 0), table(1, 0, 1, 1)]
    plan = prefix_plan(tables)
    # Sorted: [1,0,1,1] x2 (indices 1, 4), [1,1,0,0], [1,1,0,1], [1,1,1,0].
    assert [p.index for p in plan] == [1, 4, 0, 2, 3]
    assert [p.replay for p in plan] == [0, 4, 1, 3, 2]
    # Index 0 computes from step 1 on: it keeps step 3 for index 2 and step 2 for index 3.
    assert plan[2].snapshots == {2, 3} and plan[0].snapshots == {1} and not plan[1].snapshots
