"""Re-running `ecad eval` with --repeats 0 keeps the latency measured earlier, and says so."""

import json

from ecad.evaluation import EvalConfig, evaluate
from ecad.report.html import _eval_section


def test_repeats_0_keeps_the_earlier_latency_for_unchanged_schedules(tiny_model_dir, tmp_path):
    out = tmp_path / "eval"
    common = dict(model=str(tiny_model_dir), prompts=["w5 w6", "a w7"], num_steps=6, height=16, width=16,
                  warmup=0, device="cpu")
    measured = evaluate(EvalConfig(**common, baselines=["fora:2"], repeats=1), out, progress=False)
    kept = evaluate(EvalConfig(**common, baselines=["fora:2", "fora:3"], repeats=0), out, progress=False)
    before = {r["name"]: r for r in measured["results"]}
    after = {r["name"]: r for r in kept["results"]}
    for name in ("no-cache", "fora-2"):
        assert after[name]["latency"] == before[name]["latency"] and after[name]["speedup"] == before[name]["speedup"]
    assert "latency" not in after["fora-3"] and "speedup" not in after["fora-3"]  # never timed
    env = kept["environment"]
    assert env["latency_from_earlier_run"] and env["repeats"] == 1
    table = (out / "results.md").read_text()
    assert "measured by an earlier run of this directory; --repeats 0 kept it" in table
    assert "| fora-3 |" in table and json.loads((out / "results.json").read_text()) == kept


def test_repeats_0_without_an_earlier_measurement_says_latency_was_not_measured(tiny_model_dir, tmp_path):
    out = tmp_path / "eval"
    config = EvalConfig(model=str(tiny_model_dir), prompts=["w5 w6"], num_steps=6, height=16, width=16,
                        repeats=0, device="cpu")
    evaluate(config, out, progress=False)
    assert "Latency not measured (--repeats 0)." in (out / "results.md").read_text()
    section, _ = _eval_section(out, 1)
    assert "latency not measured (--repeats 0)" in section["summary"] and "median of 0" not in section["summary"]
