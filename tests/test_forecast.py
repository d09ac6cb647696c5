"""The forecast action: schedule actions and file format v2, and the runtime's extrapolation, checked with
``torch.equal`` against the hand-computed polynomial of recorded outputs on every adapter case of test_adapters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_adapters import BUILDERS, STEPS, _as_tuple

import ecad
from ecad import CacheSchedule, ScheduleError
from ecad.schedule.pruning import prune_dead


def layout_schedule(steps: int = 6) -> CacheSchedule:
    return CacheSchedule.full(steps, ["0", "1"], ["attn", "ff"], exists=torch.tensor([[True, True], [True, False]]))


def test_actions_round_trip_and_binary_schedules_keep_format_1(tmp_path):
    full = layout_schedule()
    binary = full.like(torch.rand(full.shape, generator=torch.Generator().manual_seed(0)) < 0.5)
    assert binary.to_dict()["format"] == "ecad.schedule/1" and "forecast_order" not in binary.to_dict()
    assert torch.equal(binary.actions, binary.recompute.to(torch.uint8))
    actions = torch.randint(0, 3, full.shape, generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    three = full.with_actions(actions)
    assert three.forecasts and three.to_dict()["format"] == "ecad.schedule/2"
    assert torch.equal(three.actions, actions * full.exists)  # absent components hold reuse (0)
    assert torch.equal(three.recompute, (actions == 1) & full.exists)
    path = tmp_path / "three.json"
    three.save(path)
    text = path.read_text()
    assert '"format": "ecad.schedule/2"' in text and "f" in json.loads(text)["blocks"]["0"]["attn"]
    loaded = CacheSchedule.load(path)
    assert loaded == three and torch.equal(loaded.actions, three.actions)
    assert loaded != binary.like(three.recompute)  # forecast is part of a schedule's identity
    assert three.resample(12).resample(6) == three


def test_file_errors_name_the_forecast_format(tmp_path):
    data = (
        layout_schedule(3).with_actions(torch.tensor([[[1, 1], [1, 0]], [[2, 1], [0, 0]], [[2, 0], [2, 0]]])).to_dict()
    )
    assert data["blocks"]["0"]["attn"] == "1ff"
    data["format"] = "ecad.schedule/1"
    (tmp_path / "v1.json").write_text(json.dumps({**data, "forecast_order": 1}))
    with pytest.raises(ScheduleError, match="forecast_order.*ecad.schedule/2"):
        CacheSchedule.load(tmp_path / "v1.json")
    del data["forecast_order"]
    (tmp_path / "v1.json").write_text(json.dumps(data))
    with pytest.raises(ScheduleError, match="'f' forecast needs format 'ecad.schedule/2'"):
        CacheSchedule.load(tmp_path / "v1.json")
    (tmp_path / "v3.json").write_text(json.dumps({**data, "format": "ecad.schedule/3"}))
    with pytest.raises(ScheduleError, match="ecad.schedule/3"):
        CacheSchedule.load(tmp_path / "v3.json")
    with pytest.raises(ScheduleError, match="paper's format holds only recompute/reuse"):
        CacheSchedule.from_dict({**data, "format": "ecad.schedule/2"}).to_paper_dict()
    with pytest.raises(ScheduleError, match="one action"):
        full = layout_schedule(3)
        CacheSchedule(
            full.recompute, full.block_names, full.component_names, full.exists, {}, full.exists.expand(3, -1, -1)
        )
    with pytest.raises(ScheduleError, match="forecast_order"):
        CacheSchedule(full.recompute, full.block_names, full.component_names, forecast_order=3)


def test_effective_forecast_needs_two_computed_outputs_and_keeps_history_unpruned():
    full = layout_schedule(6)
    actions = full.actions.clone()
    actions[:, 0, 0] = torch.tensor([1, 2, 1, 2, 0, 2])  # step 1 has one computed output: a reuse
    actions[:, 0, 1] = torch.tensor([1, 0, 0, 0, 0, 0])
    schedule = full.with_actions(actions)
    assert schedule.effective_actions()[:, 0, 0].tolist() == [1, 0, 1, 2, 0, 2]
    assert schedule.history_needed().tolist() == [[True, False], [False, False]]
    feeds = ((0, 0, 1),)  # attn only feeds ff: ff never recomputes after step 0
    assert prune_dead(schedule.effective(), feeds)[:, 0, 0].tolist() == [True] + [False] * 5
    kept = prune_dead(schedule.effective(), feeds, schedule.history_needed())
    assert kept[:, 0, 0].tolist() == [True, False, True, False, False, False]  # the forecast's history stays


@pytest.fixture(scope="module", params=list(BUILDERS))
def case(request):
    return BUILDERS[request.param]()


def forecast_schedule(case, seed: int) -> CacheSchedule:
    """Random actions, and every component forecasts the last step after computing at steps 0 and 1."""
    full = ecad.full_schedule(case.target, STEPS, adapter=case.adapter)
    actions = torch.randint(0, 3, full.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    actions[1], actions[STEPS - 1] = 1, 2
    return full.with_actions(actions)


def hand_forecast(history: list[tuple[float, tuple[torch.Tensor, ...]]], time: float) -> tuple[torch.Tensor, ...]:
    """First order from the last two computed outputs: ``y1 + (y1 - y0) * (t - t1) / (t1 - t0)``, written as the
    two Lagrange weights the runtime uses (``y1 * w1 + w0 * y0``, in that order of operations)."""
    (t0, y0), (t1, y1) = history[-2:]
    w1, w0 = (time - t0) / (t1 - t0), (time - t1) / (t0 - t1)
    return tuple((a * w1).add_(b, alpha=w0) for a, b in zip(y1, y0, strict=True))


@pytest.mark.parametrize("unit", ["step", "timestep"])
def test_forecast_equals_the_hand_computed_extrapolation(case, unit):
    """With ``prune=False`` every component module is called at every step, so forward hooks see the output the
    block used: computed, replayed or forecast. Each forecast equals the extrapolation of the recorded outputs."""
    schedule = forecast_schedule(case, seed=3)
    actions = schedule.effective_actions()
    adapter = ecad.get_adapter(case.transformer, case.adapter)
    seen: dict[tuple[int, int], list[tuple[torch.Tensor, ...]]] = {}
    times: list[float] = []
    tracker = case.transformer.register_forward_pre_hook(
        lambda _m, args, kwargs: times.append(float(kwargs[adapter.timestep_arg].reshape(-1)[0])), with_kwargs=True
    )
    hooks = [tracker] + [
        module.register_forward_hook(
            lambda _m, _i, out, key=(b, c): seen.setdefault(key, []).append(tuple(t.clone() for t in _as_tuple(out)))
        )
        for b, c, _, module in adapter.components(case.transformer)
    ]
    try:
        with case.enable(schedule, prune=False, forecast_unit=unit) as handle:
            case.run()
    finally:
        for h in hooks:
            h.remove()
    forecasts = 0
    for (b, c), outputs in seen.items():
        history: dict[int, list[tuple[float, tuple[torch.Tensor, ...]]]] = {}
        for call, output in enumerate(outputs):
            step, pass_index = divmod(call, case.passes)
            time = float(step) if unit == "step" else times[call]
            kept = history.setdefault(pass_index, [])
            if actions[step, b, c] == 1:
                kept.append((time, output))
            elif actions[step, b, c] == 2:
                assert all(torch.equal(x, y) for x, y in zip(output, hand_forecast(kept, time), strict=True))
                assert not torch.equal(output[0], kept[-1][1][0])  # a forecast, not a replay
                forecasts += 1
            else:
                assert all(torch.equal(x, y) for x, y in zip(output, kept[-1][1], strict=True)), (step, b, c)
    assert forecasts == int((actions == 2).sum()) * case.passes == handle.counts["forecast"] > 0


def test_dead_work_skipping_with_forecasts_is_bit_exact(case):
    """The skip forwards read a forecast component's output from its history like a replay: the images with
    ``prune=True`` equal those of the block's own forward (``prune=False``), FLUX's pruned sources included."""
    for seed in (4, 5):
        schedule = forecast_schedule(case, seed)
        with case.enable(schedule, prune=False) as handle:
            unpruned = case.run()
        with case.enable(schedule, prune=True) as pruned_handle:
            pruned = case.run()
        assert torch.equal(pruned, unpruned), seed
        # a forecast whose consumer replays is dead work too (FLUX single blocks): never computed when pruning
        assert 0 < pruned_handle.counts["forecast"] <= handle.counts["forecast"]


def test_forecast_without_history_is_a_reuse_and_binary_schedules_are_unchanged(case):
    """'f' where only one output was computed runs exactly as '0'; all-recompute stays exact."""
    full = ecad.full_schedule(case.target, STEPS, adapter=case.adapter)
    actions = full.actions.clone()
    actions[1:] = 0
    actions[1] = 2 * full.exists  # step 1: one computed output (step 0) -> reuse
    with case.enable(full.with_actions(actions)) as handle:
        forecast = case.run()
    assert handle.counts["forecast"] == 0
    with case.enable(full.like(actions == 1)):
        reuse = case.run()
    assert torch.equal(forecast, reuse)


def test_history_memory_is_exact_and_honours_cache_dtype():
    """One extra output per forecasting component (order 1), nothing for the others; float16 history is
    extrapolated in the model's dtype from the float16 values."""
    case = BUILDERS["pixart"]()
    adapter = ecad.get_adapter(case.transformer, case.adapter)
    full = ecad.full_schedule(case.target, STEPS, adapter=case.adapter)
    actions = full.actions.clone()
    actions[2:] = 0
    actions[STEPS - 1, 0, 0] = 2  # block 0's first component forecasts the last step from steps 0 and 1
    schedule = full.with_actions(actions)
    sizes = {}
    for name, plan in (("reuse", full.like(actions == 1)), ("forecast", schedule)):
        with case.enable(plan) as handle:
            case.run()
            sizes[name] = handle.cache_bytes()
    module = next(m for b, c, _, m in adapter.components(case.transformer) if (b, c) == (0, 0))
    seen = []
    hook = module.register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
    try:
        with case.enable(schedule, cache_dtype=torch.float16, prune=False) as handle:
            case.run()
    finally:
        hook.remove()
    assert sizes["forecast"] - sizes["reuse"] == seen[0].numel() * seen[0].element_size()
    y0, y1 = (seen[s].half().float() for s in (0, 1))
    expected = (y1 * 3.0).add_(y0, alpha=-2.0)  # t = 3 from t0 = 0, t1 = 1
    assert seen[STEPS - 1].dtype == torch.float32 and torch.equal(seen[STEPS - 1], expected)
    assert handle.counts["forecast"] == 1


def test_action_mutation_moves_genes_to_the_other_actions():
    from ecad.search.operators import ActionMutation

    class Problem:
        n_var = 400

    X = np.random.default_rng(0).integers(0, 3, size=(50, 400))
    mutated = ActionMutation(3, prob=1.0, prob_var=0.25)._do(Problem(), X, random_state=np.random.default_rng(1))
    changed = mutated != X
    assert 0.2 < changed.mean() < 0.3 and set(np.unique(mutated)) == {0, 1, 2}
    moved_to = [(mutated[changed] - X[changed]) % 3 == shift for shift in (1, 2)]
    assert all(0.4 < m.mean() < 0.6 for m in moved_to)  # both other actions equally likely


def test_search_over_three_actions_resumes_to_the_same_front(tmp_path):
    """Seeds include TaylorSeer schedules, genes take all three values, forecasting fronts are written as
    ecad.schedule/2, and a run continued with more generations equals one run straight through."""
    from tiny_pipelines import tiny_pixart_pipeline

    from ecad.search import RunDirectory, SearchConfig, search

    model = tmp_path / "pipe"
    tiny_pixart_pipeline(num_layers=2, seed=1).save_pretrained(model)

    def config(generations):
        return SearchConfig(
            model=str(model),
            prompts=["a w1", "w2 w3"],
            population=6,
            generations=generations,
            num_steps=6,
            height=16,
            width=16,
            device="cpu",
            batch_size=4,
            actions="reuse,forecast",
        )

    from ecad.cli import build_parser

    args = build_parser().parse_args(["search", "--model", "m", "--out", "o", "--actions", "reuse,forecast"])
    assert (
        args.actions == "reuse,forecast"
        and build_parser().parse_args(["search", "--model", "m", "--out", "o"]).actions == "reuse"
    )
    straight = search(config(2), tmp_path / "straight", progress=False)
    search(config(1), tmp_path / "resumed", progress=False)
    resumed = search(config(2), tmp_path / "resumed", resume=True, progress=False)
    assert resumed.front == straight.front and resumed.hypervolumes == straight.hypervolumes
    population = json.loads(sorted((tmp_path / "straight" / "generations").iterdir())[0].read_text())["population"]
    assert {"taylorseer-2", "taylorseer-3"} <= {row["name"] for row in population}
    assert any(":f1:" in row["key"] for row in population)
    front = RunDirectory(tmp_path / "straight").read_front()["front"]
    formats = {json.loads((tmp_path / "straight" / row["file"]).read_text())["format"] for row in front}
    assert formats <= {"ecad.schedule/1", "ecad.schedule/2"}
    for row in front:
        schedule = CacheSchedule.load(tmp_path / "straight" / row["file"])
        assert (schedule.to_dict()["format"] == "ecad.schedule/2") == schedule.forecasts


def test_taylorseer_baseline_show_and_picture(tmp_path, capsys):
    from ecad.cli import main
    from ecad.report.pictures import COLORS, schedule_image
    from ecad.schedule.heuristics import baseline, parse_baseline

    layout = ecad.adapters.ModelLayout(("0", "1"), ("attn", "ff"), torch.ones(2, 2, dtype=torch.bool))
    schedule = baseline(layout, 7, "taylorseer:3:2")
    assert schedule.forecast_order == 2 and schedule.metadata["name"] == "taylorseer-3-order2"
    assert schedule.actions[:, 0, 0].tolist() == [1, 2, 2, 1, 2, 2, 1]
    assert schedule.effective_actions()[:, 0, 0].tolist() == [1, 0, 0, 1, 2, 2, 1]  # one computed output: reuse
    assert parse_baseline("taylorseer:3") == ("taylorseer", [3])
    for bad, message in (
        ("taylorseer", "needs its interval"),
        ("taylorseer:2:3", "forecast order"),
        ("fora:2:2", "takes 1 argument"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_baseline(bad)
    path = tmp_path / "ts.json"
    schedule.save(path)
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "attn 0 █ff█ff█" in out and "forecasts 8/28" in out and "order 2" in out
    pixels = np.asarray(schedule_image(schedule, width=7))
    assert (pixels[0, :, :3] == COLORS[[0, 1, 1, 0, 3, 3, 0]]).all()  # what runs: reuse before two outputs exist
