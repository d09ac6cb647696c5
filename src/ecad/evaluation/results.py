"""An evaluation's results as JSON (everything), CSV (one flat row per schedule) and a Markdown table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..schedule_io import write_json


def metric_columns(name: str, scores: dict[str, float]) -> dict[str, float]:
    """A metric's numbers under readable column names: ``fid``, ``fidelity.ssim``, ``tiny-reward``.

    ``quality`` repeats one of the named numbers, so it is shown only when it is the metric's only number.
    """
    named = {k: v for k, v in scores.items() if k != "quality"}
    if not named:
        return {name: scores["quality"]}
    return {k if k == name.replace("-", "_") else f"{name}.{k}": v for k, v in named.items()}


LATENCY_COLUMNS = ("median_s", "q1_s", "q3_s", "min_s", "max_s", "per_image_s", "transformer_median_s")


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    flat = {k: row.get(k) for k in ("name", "family", "source", "recompute_fraction", "macs", "macs_speedup")}
    for key in LATENCY_COLUMNS:
        flat[f"latency_{key}"] = row["latency"][key] if "latency" in row else None
    flat["speedup"] = row.get("speedup")
    flat["transformer_speedup"] = row.get("transformer_speedup")
    for name, scores in row["metrics"].items():
        flat.update(metric_columns(name, scores))
    flat["key"] = row["key"]
    return flat


def to_csv(report: dict[str, Any]) -> str:
    rows = [flat_row(r) for r in report["results"]]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _number(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def to_markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        f"# ecad eval: {report['config']['model']}",
        "",
        f"{report['images']} images per schedule, {report['num_steps']} steps, {report['height']}x{report['width']} px. "
        f"MACs: executed per image (counted while generating), {report['convention']} convention.",
    ]
    if env["repeats"] > 0:
        lines.append(f"Latency: whole pipeline call, batch {env['latency_batch_size']}, median of {env['repeats']} "
                     f"interleaved rounds after {env['warmup']} warm-up (spread: interquartile range) on {env['device_name']} "
                     f"({env['device']}, {env['torch_threads']} threads), torch {env['torch']}, diffusers "
                     f"{env['diffusers']}. Speedups are relative to no caching measured in the same run.")
    else:
        lines.append("Latency not measured (--repeats 0).")
    metric_names = [column for name, scores in report["results"][0]["metrics"].items()
                    for column in metric_columns(name, scores)]
    header = ["schedule", "family", "recompute", "TMACs", "MAC speedup", "latency s [IQR]", "speedup", *metric_names]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["results"]:
        flat = flat_row(row)
        latency = row.get("latency")
        cells = [
            row["name"], row.get("family", "–"), f"{row['recompute_fraction']:.1%}", f"{row['macs'] / 1e12:.4g}", f"{row['macs_speedup']:.2f}x",
            f"{latency['median_s']:.4g} [{latency['q1_s']:.4g}, {latency['q3_s']:.4g}]" if latency else "–",
            f"{row['speedup']:.2f}x" if "speedup" in row else "–",
            *(_number(flat[m]) for m in metric_names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(report: dict[str, Any], out: Path) -> None:
    write_json(report, out / "results.json")
    write_json({}, out / "results.csv", text=to_csv(report))
    write_json({}, out / "results.md", text=to_markdown(report))


def read_results(out: str | Path) -> dict[str, Any]:
    path = Path(out) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no eval results at {path}; run `ecad eval --out {out}` first.")
    return json.loads(path.read_text())
