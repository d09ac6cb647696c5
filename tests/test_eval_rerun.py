"""Latency timing says what it costs before it starts; re-running `ecad eval` with --repeats 0 keeps the latency
measured earlier, and says so; a measured speedup above the MAC speedup is marked as noise."""

import copy
import json
import logging
import re

from ecad.evaluation import EvalConfig, evaluate
from ecad.evaluation.results import to_markdown
from ecad.report.html import _eval_section


def test_repeats_0_keeps_the_earlier_latency_for_unchanged_schedules(tiny_model_dir, tmp_path, caplog):
    out = tmp_path / "eval"
    common = dict(
        model=str(tiny_model_dir), prompts=["w5 w6", "a w7"], num_steps=6, height=16, width=16, warmup=0, device="cpu"
    )
    with caplog.at_level(logging.INFO, logger="ecad"):
        measured = evaluate(EvalConfig(**common, baselines=["fora:2"], repeats=1), out, progress=False)
    announced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("latency:")]
    assert len(announced) == 1 and re.fullmatch(
        r"latency: 2 pipeline calls of 2 image\(s\) \(2 methods x 0 warm-up \+ 1 timed rounds\), about \d+\.\d min at "
        r"this run's generation speed; --repeats 0 skips timing \(and keeps latencies an earlier run of --out "
        r"measured\)",
        announced[0],
    ), announced
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ecad"):
        kept = evaluate(EvalConfig(**common, baselines=["fora:2", "fora:3"], repeats=0), out, progress=False)
    assert not [r for r in caplog.records if r.getMessage().startswith("latency:")]  # nothing is timed
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
    config = EvalConfig(
        model=str(tiny_model_dir), prompts=["w5 w6"], num_steps=6, height=16, width=16, repeats=0, device="cpu"
    )
    evaluate(config, out, progress=False)
    assert "Latency not measured (--repeats 0)." in (out / "results.md").read_text()
    section, _ = _eval_section(out, 1)
    assert "latency not measured (--repeats 0)" in section["summary"] and "median of 0" not in section["summary"]


def test_a_measured_speedup_above_the_mac_speedup_is_marked_as_noise():
    report = {
        "config": {"model": "m"},
        "num_steps": 6,
        "height": 16,
        "width": 16,
        "images": 2,
        "convention": "full",
        "environment": {"repeats": 0},
        "results": [
            {
                "name": "no-cache",
                "recompute_fraction": 1.0,
                "macs": 5.3e9,
                "macs_speedup": 1.0,
                "speedup": 1.0,
                "key": "a",
                "metrics": {},
            },
            {
                "name": "fora-2",
                "recompute_fraction": 0.5,
                "macs": 2.9e9,
                "macs_speedup": 1.83,
                "speedup": 1.61,
                "key": "b",
                "metrics": {},
            },
        ],
    }
    table = to_markdown(report)
    assert "(noise)" not in table and "| 5.3 GMAC |" in table and "| 2.9 GMAC |" in table
    noisy = copy.deepcopy(report)
    noisy["results"][1]["speedup"] = 1.95
    table = to_markdown(noisy)
    assert "| 1.95x (noise) |" in table and "| 1.00x |" in table
    assert "(noise): measured above the MAC speedup" in table and "more --repeats narrow it" in table
