"""`ecad report`: a self-contained page of a tiny search run, checked as data and in a real headless Chromium."""

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from ecad.cli import main
from ecad.evaluation import EvalConfig, evaluate
from ecad.report import build_report, load_run, pareto_front, schedule_image
from ecad.report.data import Point


@pytest.fixture(scope="module")
def eval_dir(tiny_run, tiny_model_dir, tmp_path_factory):
    """An evaluation of two front schedules, FORA-2 and First Block Cache on held-out prompts (latency minimal)."""
    out = tmp_path_factory.mktemp("eval") / "eval"
    front = sorted((tiny_run / "front").glob("*.json"))[:2]
    config = EvalConfig(
        model=str(tiny_model_dir),
        prompts=["w5 w6", "a w7"],
        schedules=[str(f) for f in front],
        baselines=["fora:2", "fbcache:1000"],
        num_steps=6,
        height=16,
        width=16,
        warmup=0,
        repeats=1,
        device="cpu",
    )
    evaluate(config, out, progress=False)
    return out


def page_data(html: str) -> dict:
    payload = re.search(r'<script id="ecad-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    return json.loads(payload.replace("<\\/", "</"))


def expected_points(run_dir: Path) -> list[int]:
    """Points the page must draw per generation, computed from the run's files independently of ecad.report:
    that generation's population, the non-dominated feasible schedules evaluated so far, and the named seeds."""
    generations = [json.loads(p.read_text()) for p in sorted((run_dir / "generations").glob("*.json"))]
    baselines = {r["key"] for r in generations[0]["population"] if r["name"]}
    seen, counts = {}, []
    for generation in generations:
        for row in generation["population"]:
            seen.setdefault(row["key"], (row["quality"], row["cost_fraction"]))
        feasible = {k: v for k, v in seen.items() if v[1] < 1.0}
        front = {
            k
            for k, (q, c) in feasible.items()
            if not any(q2 >= q and c2 <= c and (q2, c2) != (q, c) for q2, c2 in feasible.values())
        }
        counts.append(len({r["key"] for r in generation["population"]} | front | baselines))
    return counts


def test_pareto_front_and_schedule_picture(tiny_run):
    points = [Point("a", 0.9, 0.5, 0), Point("b", 0.8, 0.6, 0), Point("c", 0.95, 0.7, 0), Point("d", 0.95, 0.7, 1)]
    assert [p.key for p in pareto_front(points)] == ["a", "c", "d"]
    run = load_run(tiny_run)
    schedule = run.schedule(run.generations[-1].front[0])
    picture = schedule_image(schedule, width=60)
    assert picture.size == (6 * 10, 10 * (3 * 3 + 2))  # 6 steps; 3 components x 3 blocks + 2 separating rows
    assert picture.getpixel((5, 5)) == (33, 102, 172)  # step 0 recomputes


def test_report_is_one_self_contained_page(tiny_run, eval_dir, tmp_path, capsys):
    out = tmp_path / "site" / "report.html"
    assert main(["report", str(tiny_run), "-o", str(out), "--eval", str(eval_dir), "--samples", "2"]) == 0
    html = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html) and "<script src" not in html
    assert "fetch(" not in html and "XMLHttpRequest" not in html
    for png in ("front.png", "hypervolume.png", "eval.png"):
        with Image.open(out.with_name(png)) as image:
            assert image.format == "PNG" and image.width > 300
    data = page_data(html)
    run = load_run(tiny_run)
    assert [g["index"] for g in data["generations"]] == [0, 1, 2]
    assert [len({*g["population"], *g["front"], *data["baselines"]}) for g in data["generations"]] == expected_points(
        tiny_run
    )
    names = {data["points"][i]["name"] for i in data["baselines"]}
    assert {"no-cache", "fora-2", "fora-3"} <= names
    points = {p["key"]: p for p in data["points"]}
    for key in run.generations[-1].front + run.baselines:  # generated or taken from the evaluation
        assert len(points[key]["samples"]) == 2 and points[key]["picture"].startswith("data:image/png;base64,")
    evaluated = {r["name"]: r for r in data["eval"]["rows"]}
    assert set(evaluated) >= {"no-cache", "fora-2"} and evaluated["fora-2"]["samples"]
    assert "fidelity.ssim" in data["eval"]["metric_columns"]
    assert data["eval"]["plot_png"].startswith("data:image/png;base64,")
    peer = evaluated["fbcache-1000"]  # another library's method: its own family, images, no schedule picture
    assert peer["family"] == "fbcache" and peer["samples"] and peer["picture"] == ""

    assert main(["report", str(tmp_path), "-o", str(tmp_path / "x.html")]) == 1
    assert "not a search run directory" in capsys.readouterr().err


def test_report_without_a_loadable_model_says_why_images_are_missing(tiny_run, tmp_path, caplog):
    run = tmp_path / "run"
    import shutil

    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "model": str(tmp_path / "gone")}))
    # the images the search kept need no model
    build_report(run, tmp_path / "report.html", samples=2)
    data = page_data((tmp_path / "report.html").read_text())
    shown = load_run(run).generations[-1].front + load_run(run).baselines
    assert all(len(p["samples"]) == 2 for p in data["points"] if p["key"] in shown)
    assert "cannot load" not in caplog.text
    # without them (a run from before ecad kept them, or asking for more than it keeps) the page says why
    shutil.rmtree(run / "samples")
    build_report(run, tmp_path / "report.html", samples=2)
    data = page_data((tmp_path / "report.html").read_text())
    assert all(not p["samples"] for p in data["points"])
    assert "--samples N" in data["missing_samples"] and "cannot load the run's model" in caplog.text


@pytest.mark.browser
def test_report_in_headless_chromium(tiny_run, eval_dir, tmp_path):
    from cdp import Browser, find_browser

    executable = find_browser()
    if executable is None:
        pytest.skip("no chromium on PATH (CI installs Debian's chromium with apt; locally: apt-get install chromium)")
    pytest.importorskip("websocket", reason="websocket-client is in the test extra: pip install -e '.[test]'")
    out = tmp_path / "report.html"
    build_report(tiny_run, out, eval_dir=eval_dir, samples=2)
    expected = expected_points(tiny_run)
    browser = Browser(executable, tmp_path / "profile")
    try:
        browser.open(out.as_uri())
        assert browser.evaluate("document.querySelectorAll('#plot .pt').length") == expected[-1]
        assert browser.evaluate("document.querySelector('#plot .front-line') !== null")
        browser.evaluate(
            "const s = document.getElementById('generation'); s.value = 0; s.dispatchEvent(new Event('input'))"
        )
        assert browser.evaluate("document.querySelectorAll('#plot .pt').length") == expected[0]
        browser.evaluate(
            "const g = document.getElementById('generation'); g.value = g.max; g.dispatchEvent(new Event('input'))"
        )
        box = browser.evaluate(
            "(() => { const r = document.querySelector('#plot .pt.front')"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        browser.click(*box)
        assert not browser.evaluate("document.getElementById('tooltip').hidden")
        shown = browser.evaluate(
            "[...document.querySelectorAll('#details img.sample')].map(i => i.complete && i.naturalWidth > 0)"
        )
        assert shown == [True, True]
        assert browser.evaluate("document.querySelector('#details .schedule-picture img').naturalWidth") > 0
        assert browser.evaluate("document.querySelectorAll('#plot .pt.selected').length") == 1
        assert browser.evaluate("document.querySelectorAll('#front-table tbody tr').length") == len(
            load_run(tiny_run).generations[-1].front
        )
        # no caching, FORA-2, First Block Cache and the two front schedules
        assert browser.evaluate("document.querySelectorAll('#eval-table tbody tr').length") == 5
        assert browser.evaluate("document.querySelector('#front-table thead th').textContent") == "file"
        labels = browser.evaluate(
            "[...document.querySelectorAll('#plot .base-label')].map(t => { "
            "const b = t.getBBox(); return [b.x, b.y, b.width, b.height]; })"
        )
        assert len(labels) == len(load_run(tiny_run).baselines)
        assert not any(
            ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
            for i, (ax, ay, aw, ah) in enumerate(labels)
            for bx, by, bw, bh in labels[i + 1 :]
        )
        # each label has a leader line from its own diamond's centre to the label
        leaders = browser.evaluate(
            "[...document.querySelectorAll('#plot .base-leader')].map(l => "
            "['x1', 'y1', 'x2', 'y2'].map(a => +l.getAttribute(a)))"
        )
        diamonds = browser.evaluate(
            "[...document.querySelectorAll('#plot .pt.base')].map(d => { "
            "const b = d.getBBox(); return [b.x + b.width / 2, b.y + b.height / 2]; })"
        )
        assert len(leaders) == len(labels)
        assert sorted((round(x1, 2), round(y1, 2)) for x1, y1, _, _ in leaders) == sorted(
            (round(x, 2), round(y, 2)) for x, y in diamonds
        )
        for _, _, x2, y2 in leaders:  # ends at the middle of a label's left or right edge
            assert any(
                y2 == pytest.approx(ly + lh / 2) and x2 in (pytest.approx(lx), pytest.approx(lx + lw))
                for lx, ly, lw, lh in labels
            )
        screenshot = tmp_path / "report.png"
        browser.screenshot(screenshot)
        assert browser.errors() == []
    finally:
        browser.close()
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == (1280, 1000)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 100  # a rendered page, not a blank one


def test_long_runs_show_evenly_spaced_generations_with_the_first_and_last(tiny_run, tmp_path, capsys):
    from ecad.report.data import Generation, shown_generations

    generations = [Generation(i, [], [], {}) for i in range(10)]
    assert [g.index for g in shown_generations(generations, 4)] == [0, 3, 6, 9]
    assert [g.index for g in shown_generations(generations, 2)] == [0, 9]
    assert shown_generations(generations, 10) == generations == shown_generations(generations, 60)
    build_report(tiny_run, tmp_path / "report.html", samples=0, max_generations=2)
    data = page_data((tmp_path / "report.html").read_text())
    assert [g["index"] for g in data["generations"]] == [0, 2]  # of the run's 3
    assert main(["report", str(tiny_run), "-o", str(tmp_path / "x.html"), "--max-generations", "1"]) == 1
    assert "--max-generations must be at least 2" in capsys.readouterr().err


def test_report_names_each_front_file_with_a_command_and_the_suggestion(tiny_run, tmp_path):
    build_report(tiny_run, tmp_path / "report.html", samples=0)
    data = page_data((tmp_path / "report.html").read_text())
    front = json.loads((tiny_run / "front.json").read_text())["front"]
    points = {p["key"]: p for p in data["points"]}
    for row in front:
        point = points[row["key"]]
        assert point["file"] == row["file"]
        assert point["command"] == (
            f"ecad generate --model {load_run(tiny_run).config.model} --schedule "
            f"{tiny_run / row['file']} --prompt 'a w1 w2' --out image.png"
        )
    assert all(
        p["file"] is None and p["command"] is None for p in data["points"] if p["key"] not in {r["key"] for r in front}
    )
    assert data["run"]["suggested"] in {r["key"] for r in front}
    notes = " ".join(data["run"]["notes"])
    assert "front/000.json is the cheapest" in notes and "Suggested: front/" in notes
    assert "calibration rows" not in notes  # fidelity: no cached schedule beats no caching (SSIM 1)


def test_report_prints_the_paths_of_what_it_writes(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(tiny_run), "-o", "report.html", "--samples", "0"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(tmp_path / n) for n in ("report.html", "front.png", "hypervolume.png")
    ]


def test_report_warns_when_cached_schedules_beat_no_caching_on_few_rows(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    summary = json.loads((run / "front.json").read_text())
    summary["no_cache"]["quality"] = 0.0  # as if every front schedule scored above no caching
    (run / "front.json").write_text(json.dumps(summary))
    build_report(run, tmp_path / "report.html", samples=0)
    notes = " ".join(page_data((tmp_path / "report.html").read_text())["run"]["notes"])
    assert "score above no caching" in notes and "on these 2 calibration rows" in notes and "ecad eval" in notes


def test_plot_labels_never_overlap_and_generation_ticks_are_whole(tiny_run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from ecad.report.html import plot_run_front, plot_run_hypervolume
    from ecad.report.plots import place_labels

    fig, ax = plt.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 1)
    crowded = [(7.06, 0.001, "fora-20"), (6.82, 0.002, "fora-10"), (6.9, 0.0, "fora-7"), (1.0, 0.8, "no-cache")]
    labels = place_labels(ax, crowded)
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(label, renderer) for label in labels]  # the text, not its leader line (placed)
    assert len(boxes) == 4
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    # each label has a leader line to its own point, and sits near it: within 3 label heights
    for label, (x, y, text) in zip(
        sorted(labels, key=lambda label: label.get_text()), sorted(crowded, key=lambda p: p[2]), strict=True
    ):
        assert label.get_text() == text and label.xy == (x, y) and label.arrow_patch is not None
        point = ax.transData.transform((x, y))
        box = Text.get_window_extent(label, renderer)
        assert abs((box.y0 + box.y1) / 2 - point[1]) < 3 * box.height
    plt.close(fig)

    run = load_run(tiny_run)
    labels = plot_run_front(run, tmp_path / "front.png")
    assert sorted(label.get_text() for label in labels) == sorted(run.points[k].name for k in run.baselines)
    ticks = plot_run_hypervolume(run, tmp_path / "hypervolume.png")
    assert ticks and all(t == int(t) for t in ticks) and {0.0, 2.0} <= set(ticks)


def test_a_label_at_the_right_edge_goes_to_the_left_of_its_point():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ecad.report.plots import place_labels

    fig, ax = plt.subplots()
    ax.set_xlim(0, 7.1)
    (label,) = place_labels(ax, [(7.06, 0.5, "fora-10")])
    renderer = fig.canvas.get_renderer()
    assert label.get_window_extent(renderer).x1 <= ax.get_window_extent(renderer).x1
    plt.close(fig)
