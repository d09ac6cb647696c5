"""`ecad demo` end to end on the shipped tiny-shapes model (a very small search)."""

import json
import re

import pytest

from ecad.cli import main
from ecad.schedule import CacheSchedule


@pytest.mark.slow
def test_demo_writes_front_plot_report_and_suggests_a_sensible_schedule(tmp_path, capsys, monkeypatch):
    def no_second_load(*args, **kwargs):
        raise AssertionError("the report loaded the model again instead of using the search's images")

    monkeypatch.setattr("ecad.report.samples.load_pipeline", no_second_load)
    out = tmp_path / "demo"
    assert (
        main(
            ["demo", "--out", str(out), "--population", "4", "--generations", "1", "--prompts", "2", "--device", "cpu"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    summary = json.loads((out / "front.json").read_text())
    front, no_cache = summary["front"], summary["no_cache"]["quality"]
    assert front and all(row["speedup"] > 1 for row in front)
    assert (out / "front.png").stat().st_size > 1000 and (out / "report.html").stat().st_size > 10_000
    assert "report.html" in printed and "front/000.json is the cheapest schedule" in printed
    # the report's sample images are the search's own: 2 per front point and baseline, none made again
    assert (out / "report.html").read_text().count("data:image/jpeg") >= 2 * len(front)
    config = json.loads((out / "config.json").read_text())
    assert config["metric"] == "tiny-reward" and config["model"] == "tiny-shapes"

    # The suggestion: the fastest front schedule within 5% of no caching (else the best one), named with its reason.
    suggested = re.search(
        r"use it: (ecad generate --model tiny-shapes --schedule (\S+) --prompt .* --out image.png)", printed
    )
    assert suggested, printed
    row = next(r for r in front if str(out / r["file"]) == suggested.group(2))
    within = [r for r in front if r["quality"] >= no_cache - 0.05 * abs(no_cache)]
    if within:
        assert row["speedup"] == max(r["speedup"] for r in within) and "at most 5% below" in printed
    else:
        assert row["quality"] == max(r["quality"] for r in front) and "no front schedule is within 5%" in printed
    metadata = CacheSchedule.load(suggested.group(2)).metadata  # the file says how to run it
    assert metadata["settings"] == {
        "model": "tiny-shapes",
        "num_steps": 20,
        "guidance_scale": 3.0,
        "height": 64,
        "width": 64,
    }
    assert metadata["score"]["metric"] == "tiny-reward" and metadata["macs"]["mac_speedup"] > 1

    # running it again continues the same run instead of failing on the existing directory
    assert (
        main(
            ["demo", "--out", str(out), "--population", "4", "--generations", "2", "--prompts", "2", "--device", "cpu"]
        )
        == 0
    )
    assert len(list((out / "generations").iterdir())) == 2
