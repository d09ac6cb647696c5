"""`ecad demo` end to end on the shipped tiny-shapes model (a very small search)."""

import json

from ecad.cli import main


def test_demo_writes_front_plot_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--population", "4", "--generations", "1", "--prompts", "2",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    front = json.loads((out / "front.json").read_text())["front"]
    assert front and all(row["speedup"] > 1 for row in front)
    assert (out / "front.png").stat().st_size > 1000 and (out / "report.html").stat().st_size > 10_000
    assert "report.html" in printed and "ecad generate --model tiny-shapes" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["metric"] == "tiny-reward" and config["model"] == "tiny-shapes"
    # running it again continues the same run instead of failing on the existing directory
    assert main(["demo", "--out", str(out), "--population", "4", "--generations", "2", "--prompts", "2",
                 "--device", "cpu"]) == 0
    assert len(list((out / "generations").iterdir())) == 2
