"""`ecad eval` wiring: each stored image set is what that schedule generates (checked against a direct pipeline call
under ``enable_cache``, ``torch.equal``), latency is timed with the schedule's replays running, a schedule whose bits
change is generated again, and ``--resample`` maps a schedule to the evaluation's steps."""

import contextlib
import json
from collections import Counter
from contextlib import nullcontext

import pytest
import torch
from safetensors.torch import load_file

import ecad
from ecad.cli import main
from ecad.evaluation import EvalConfig, evaluate
from ecad.generation import CalibrationGenerator
from ecad.models.loading import load_pipeline
from ecad.schedule import heuristics

PROMPTS = ["a w1", "w2 w3"]
STEPS = 6


def stored_latents(out, name):
    return load_file(out / "images" / name / "latents.safetensors")["latents"]


def direct_latents(model_dir, schedule, steps=STEPS, **enable):
    """The rows' final latents from one plain pipeline call (prompt strings, one seeded generator per row)."""
    pipe = load_pipeline(str(model_dir), device="cpu")
    with ecad.enable_cache(pipe, schedule, **enable) if schedule is not None else nullcontext():
        return pipe(
            PROMPTS,
            num_inference_steps=steps,
            height=16,
            width=16,
            guidance_scale=4.5,
            generator=[torch.Generator().manual_seed(0) for _ in PROMPTS],
            output_type="latent",
            use_resolution_binning=False,
            clean_caption=False,
        ).images


@pytest.fixture(scope="module")
def layout(tiny_model_dir):
    return ecad.model_layout(load_pipeline(str(tiny_model_dir), device="cpu"))


def config(model_dir, schedules, **overrides):
    values = dict(
        model=str(model_dir),
        prompts=PROMPTS,
        schedules=[str(s) for s in schedules],
        baselines=["fora:2", "tgate"],
        metrics=["fidelity"],
        num_steps=STEPS,
        height=16,
        width=16,
        batch_size=4,
        warmup=0,
        repeats=0,
        device="cpu",
    )
    return EvalConfig(**{**values, **overrides})


def test_each_image_set_is_generated_under_its_own_schedule(tiny_model_dir, layout, tmp_path):
    mine = heuristics.component_interval(layout, STEPS, "ff", 3)
    mine.save(tmp_path / "mine.json")
    out = tmp_path / "eval"
    report = evaluate(config(tiny_model_dir, [tmp_path / "mine.json"]), out, progress=False)
    expected = {
        "no-cache": None,
        "fora-2": heuristics.fora(layout, STEPS, 2),
        "tgate-2": heuristics.tgate(layout, STEPS),
        "mine": mine,
    }
    assert [row["name"] for row in report["results"]] == list(expected)
    latents = {name: stored_latents(out, name) for name in expected}
    for name, schedule in expected.items():
        assert torch.equal(latents[name], direct_latents(tiny_model_dir, schedule)), name
        if schedule is not None:
            assert not torch.equal(latents[name], latents["no-cache"]), name  # caching really ran
            row = next(r for r in report["results"] if r["name"] == name)
            assert row["key"] == ecad.search.schedule_key(schedule)
            assert row["metrics"]["fidelity"]["latent_rel_error"] > 0
    names = list(expected)
    assert all(not torch.equal(latents[a], latents[b]) for i, a in enumerate(names) for b in names[i + 1 :])


def test_latency_is_timed_with_the_schedule_replaying(tiny_model_dir, layout, tmp_path, monkeypatch):
    import ecad.evaluation.runner as runner

    seen = {}
    original = runner.time_methods

    def counting(pipe, call, methods, **kwargs):
        def counted(name, method):
            @contextlib.contextmanager
            def apply():
                with method():
                    handle = ecad.active_cache(pipe)
                    before = dict(handle.counts) if handle else None
                    yield
                    if handle is None:
                        seen[name] = None
                    else:
                        schedule, counts, calls = seen.get(name) or (handle.schedule, Counter(), 0)
                        counts.update({k: handle.counts[k] - before[k] for k in before})
                        seen[name] = (schedule, counts, calls + 1)

            return apply

        return original(pipe, call, {name: counted(name, m) for name, m in methods.items()}, **kwargs)

    monkeypatch.setattr(runner, "time_methods", counting)
    report = evaluate(config(tiny_model_dir, [], warmup=1, repeats=2), tmp_path / "eval", progress=False)
    assert seen["no-cache"] is None  # no caching is timed without hooks
    for row in report["results"][1:]:
        schedule, counts, calls = seen[row["name"]]
        assert calls == 3  # warm-up and timed rounds
        assert ecad.search.schedule_key(schedule) == row["key"]
        bits, exists = schedule.effective(), schedule.exists.expand_as(schedule.effective())
        assert counts == {
            "computed": calls * int(bits.sum()),
            "reused": calls * int((exists & ~bits).sum()),
            "forecast": 0,
        }, row["name"]
        assert counts["reused"] > 0


def test_changed_bits_are_generated_again(tiny_model_dir, layout, tmp_path, monkeypatch):
    path = tmp_path / "mine.json"
    heuristics.component_interval(layout, STEPS, "ff", 3).save(path)
    out = tmp_path / "eval"
    evaluate(config(tiny_model_dir, [path], baselines=[]), out, progress=False)

    changed = heuristics.component_interval(layout, STEPS, "attn1", 2)
    changed.save(path)
    generated = []
    original = CalibrationGenerator.__call__
    monkeypatch.setattr(
        CalibrationGenerator,
        "__call__",  # eval applies each row's method around the generator
        lambda self, schedule, **kw: (
            generated.append(ecad.active_cache(self.pipe).schedule) or original(self, schedule, **kw)
        ),
    )
    evaluate(config(tiny_model_dir, [path], baselines=[]), out, progress=False)
    assert [ecad.search.schedule_key(s) for s in generated] == [ecad.search.schedule_key(changed)]
    assert torch.equal(stored_latents(out, "mine"), direct_latents(tiny_model_dir, changed))
    assert ecad.CacheSchedule.load(out / "schedules" / "mine.json") == changed


def test_resample_maps_a_schedule_to_the_evaluations_steps(tiny_model_dir, layout, tmp_path):
    path = tmp_path / "four.json"
    four = heuristics.component_interval(layout, 4, "ff", 2)
    four.save(path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "eval"
    args = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--prompts",
        str(prompts),
        "--schedules",
        str(path),
        "--steps",
        str(STEPS),
        "--height",
        "16",
        "--width",
        "16",
        "--repeats",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 1  # 4 steps against 6: refused without --resample
    assert main(args + ["--resample"]) == 0
    stored = ecad.CacheSchedule.load(out / "schedules" / "four.json")
    assert stored.num_steps == STEPS and torch.equal(stored.recompute, four.resample(STEPS).recompute)
    assert torch.equal(stored_latents(out, "four"), direct_latents(tiny_model_dir, four, resample=True))
    results = json.loads((out / "results.json").read_text())["results"]
    assert next(r for r in results if r["name"] == "four")["key"] == ecad.search.schedule_key(four.resample(STEPS))
