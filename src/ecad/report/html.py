"""``build_report``: one self-contained HTML page for a search run, plus PNG plots next to it.

The page carries everything inline (CSS, JS, the data as JSON, schedule pictures and sample images as data URIs), so
it opens from a file with no network. Its plot is drawn by the page's own JS in SVG.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from ..evaluation import ImageStore, read_results
from ..names import metric_columns
from ..schedule import CacheSchedule
from ..search import RunDirectory, speedup_label
from ..search.suggest import DEFAULT_MAX_LOSS, calibration_note, generate_command, suggest
from .data import RunData, load_run, shown_generations
from .pictures import data_uri, schedule_image
from .plots import plot_eval, plot_front, plot_hypervolume
from .samples import eval_samples, generate_samples, search_samples

logger = logging.getLogger(__name__)

_FRONT_ORDER = (
    "front/000.json is the cheapest (fastest, lowest quality) schedule of the final front; the numbers "
    "grow with cost towards no caching. Points that are not on the final front have no file."
)

MISSING_SAMPLES = (
    "No sample images for this schedule. `ecad report` generates them (--samples N) for the last front and the "
    "baselines when the run's model can be loaded, and takes them from an `ecad eval` directory (--eval DIR) for "
    "every schedule that evaluation generated."
)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _eval_section(eval_dir: Path, limit: int) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """The held-out evaluation's table rows and results (its plot is drawn from ``report``), and its images by
    schedule key."""
    report = read_results(eval_dir)
    store = ImageStore(eval_dir)
    store.read()
    rows, by_key = [], {}
    for index, row in enumerate(report["results"]):
        entry = store.index["schedules"].get(row["name"], {})
        samples = eval_samples(store, row["name"], limit)
        by_key.setdefault(row["key"], samples)
        is_schedule = entry and entry.get("kind", "schedule") == "schedule"
        schedule = CacheSchedule.load(str(eval_dir / entry["schedule"])) if is_schedule else None
        metrics = {c: v for name, scores in row["metrics"].items() for c, v in metric_columns(name, scores).items()}
        rows.append(
            {
                "index": index,
                "name": row["name"],
                "source": row["source"],
                "family": row.get("family", ""),
                "recompute": row["recompute_fraction"],
                "macs_speedup": row["macs_speedup"],
                "latency": row.get("latency", {}).get("median_s"),
                "speedup": row.get("speedup"),
                "metrics": metrics,
                "samples": samples,
                "picture": data_uri(schedule_image(schedule)) if schedule else "",
            }
        )
    env = report["environment"]
    latency = (
        f"latency on {env['device_name']} (batch {env['latency_batch_size']}, median of {env['repeats']}), "
        "speedups against no caching measured in the same run"
        if env["repeats"] > 0
        else "latency not measured (--repeats 0)"
    )
    summary = (
        f"{report['config']['model']}: {report['images']} images per schedule on held-out prompts, "
        f"{report['num_steps']} steps, {report['height']}x{report['width']} px; {latency}; MACs are those "
        "executed while generating. The plot shows every row by family (ecad's schedules, its heuristics, other "
        "libraries' methods), apart from the search's front above: these numbers come from other prompts and "
        "the evaluation's metrics."
    )
    columns = list(rows[0]["metrics"]) if rows else []
    return {"summary": summary, "metric_columns": columns, "rows": rows, "report": report}, by_key


def _page_data(
    run: RunData,
    max_generations: int,
    samples: dict[str, list[dict[str, str]]],
    evaluation: dict[str, Any] | None,
    hypervolume_png: str,
) -> dict[str, Any]:
    generations = shown_generations(run.generations, max_generations)
    keys = list(dict.fromkeys([k for g in generations for k in (*g.population, *g.front)] + run.baselines))
    ids = {key: i for i, key in enumerate(keys)}
    points = []
    for key in keys:
        point, schedule = run.points[key], run.schedule(key)
        points.append(
            {
                "id": ids[key],
                "key": key,
                "name": point.name,
                "quality": point.quality,
                "cost": point.cost_fraction,
                "generation": point.first_generation,
                "recompute": schedule.stats()["recompute_fraction"],
                "picture": data_uri(schedule_image(schedule)),
                "samples": samples.get(key, []),
            }
        )
    config = run.config
    last = run.generations[-1]
    cost_label = speedup_label(config.cost).removesuffix(" speedup")
    shown = "" if len(generations) == len(run.generations) else f" ({len(generations)} of them shown)"
    front = RunDirectory(run.path).read_front()
    files = {row["key"]: row["file"] for row in front["front"]}
    reference = (front.get("no_cache") or {}).get("quality")
    suggestion = suggest(front["front"], reference, DEFAULT_MAX_LOSS)
    calibration = len(config.prompts) * config.images_per_prompt
    for point in points:
        file = files.get(point["key"])
        point["file"] = file
        point["command"] = generate_command(config.model, run.path / file, config.prompts[0]) if file else None
    notes = [f"Front files are numbered by cost: {_FRONT_ORDER}"]
    if suggestion is not None:
        notes.append(f"Suggested: {suggestion.reason(config.metric, cost_label + ' speedup')}")
    note = calibration_note(front["front"], reference, calibration, config.metric)
    if note:
        notes.append(note)
    return {
        "run": {
            "metric": config.metric,
            "cost_label": cost_label,
            "components": list(run.layout.component_names),
            "summary": (
                f"{config.model}: NSGA-II, population {config.population}, {len(run.generations)} "
                f"generations{shown}, {len(run.points)} schedules evaluated on {len(config.prompts)} prompts x "
                f"{config.images_per_prompt} images = {calibration} calibration rows, {config.num_steps} "
                f"steps, guidance {config.guidance_scale:g}. Quality: {config.metric}; cost: {config.cost}. "
                f"Final front: {len(last.front)} schedules; {RunDirectory(run.path).compute_spent()}."
            ),
            "notes": notes,
            "suggested": suggestion.row["key"] if suggestion else None,
            "no_cache_quality": reference,
        },
        "points": points,
        "generations": [
            {
                "index": g.index,
                "population": [ids[k] for k in g.population],
                "front": [ids[k] for k in g.front],
                "hypervolume": g.summary.get("hypervolume"),
            }
            for g in generations
        ],
        "baselines": [ids[k] for k in run.baselines],
        "eval": evaluation,
        "missing_samples": MISSING_SAMPLES,
        "hypervolume_png": hypervolume_png,
        "footnote": (
            f"Run directory: {run.path}. Fronts are the non-dominated schedules among all evaluated up to "
            f"each generation; {cost_label} speedup = 1 / cost fraction of the search's cost model "
            "(predicted, not timed). Measured speedups come from `ecad eval`."
        ),
    }


def plot_run_front(run: RunData, path: Path) -> list[Any]:
    """The run's last front with every evaluated schedule and the baselines (:func:`.plots.plot_front`)."""
    last, speedup = run.generations[-1], {k: 1 / p.cost_fraction for k, p in run.points.items()}
    return plot_front(
        path,
        [(speedup[k], p.quality) for k, p in run.points.items()],
        [(speedup[k], run.points[k].quality) for k in last.front],
        speedup=speedup_label(run.config.cost),
        metric=run.config.metric,
        generation=last.index,
        baselines=[(speedup[k], run.points[k].quality, run.points[k].name) for k in run.baselines],
    )


def plot_run_hypervolume(run: RunData, path: Path) -> list[float]:
    """The run's hypervolume per generation (:func:`.plots.plot_hypervolume`)."""
    return plot_hypervolume(
        path, [(g.index, g.summary["hypervolume"]) for g in run.generations if "hypervolume" in g.summary]
    )


def build_report(
    run_dir: str | Path,
    out: str | Path,
    eval_dir: str | Path | None = None,
    samples: int = 3,
    max_generations: int = 60,
) -> list[Path]:
    """Write ``out`` (HTML) with ``front.png`` and ``hypervolume.png`` (and, with ``eval_dir``, ``eval.png``) beside
    it; returns the written paths."""
    run = load_run(run_dir)
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; give the report's file name, e.g. {out / 'report.html'}.")
    evaluation, images = _eval_section(Path(eval_dir), samples) if eval_dir else (None, {})  # read before writing
    out.parent.mkdir(parents=True, exist_ok=True)
    front_png, hypervolume_png = out.with_name("front.png"), out.with_name("hypervolume.png")
    plot_run_front(run, front_png)
    plot_run_hypervolume(run, hypervolume_png)
    eval_png = out.with_name("eval.png")
    if evaluation is not None:
        plot_eval(evaluation.pop("report"), eval_png)
        evaluation["plot_png"] = data_uri(Image.open(eval_png))
    wanted = [k for k in dict.fromkeys(run.generations[-1].front + run.baselines) if not images.get(k)]
    if samples > 0 and wanted:
        images.update(search_samples(run.path, run.config, wanted, samples))
        wanted = [k for k in wanted if not images.get(k)]
    if samples > 0 and wanted:
        images.update(generate_samples(run.config, {k: run.schedule(k) for k in wanted}, samples))
    data = _page_data(run, max_generations, images, evaluation, data_uri(Image.open(hypervolume_png)))
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = f"ecad search report: {Path(run.config.model).name or run.config.model}"
    page = (
        _asset("template.html")
        .replace("__CSS__", _asset("report.css"))
        .replace("__JS__", _asset("report.js"))
        .replace("__TITLE__", title.replace("&", "&amp;").replace("<", "&lt;"))
        .replace("__DATA__", payload)
    )
    out.write_text(page, encoding="utf-8")
    return [out, front_png, hypervolume_png, *([eval_png] if eval_dir else [])]
