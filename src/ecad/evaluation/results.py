"""An evaluation's results as JSON (everything), CSV (one flat row per schedule) and a Markdown table."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..names import metric_columns
from ..units import format_macs
from ..validation import read_json, write_json

LATENCY_COLUMNS = ("median_s", "q1_s", "q3_s", "min_s", "max_s", "per_image_s", "transformer_median_s")
NOISE_MARK = " (noise)"  # after a measured speedup above the MAC speedup, explained under the table


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
        f"{report['images']} images per schedule, {report['num_steps']} steps, "
        f"{report['height']}x{report['width']} px. "
        f"Executed MACs (counted while generating) per {report.get('macs_per', 'image')}, {report['convention']} "
        f"convention: {report.get('macs_counted', '')}. MAC speedup: of the executed MACs, priced by the cost model; "
        "measured speedup: timed.",
    ]
    if env["repeats"] > 0:
        earlier = (
            " (measured by an earlier run of this directory; --repeats 0 kept it)"
            if env.get("latency_from_earlier_run")
            else ""
        )
        lines.append(
            f"Latency{earlier}: whole pipeline call, batch {env['latency_batch_size']}, median of "
            f"{env['repeats']} interleaved rounds after {env['warmup']} warm-up (spread: interquartile range) on "
            f"{env['device_name']} ({env['device']}, {env['torch_threads']} threads), torch {env['torch']}, "
            f"diffusers {env['diffusers']}. Speedups are relative to no caching measured in the same run."
        )
    else:
        lines.append("Latency not measured (--repeats 0).")
    metric_names = [
        column for name, scores in report["results"][0]["metrics"].items() for column in metric_columns(name, scores)
    ]
    header = [
        "schedule",
        "family",
        "recompute",
        "MACs",
        "MAC speedup",
        "latency s [IQR]",
        "measured speedup",
        *metric_names,
    ]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["results"]:
        flat = flat_row(row)
        latency = row.get("latency")
        cells = [
            row["name"],
            row.get("family", "–"),
            f"{row['recompute_fraction']:.1%}",
            format_macs(row["macs"]),
            f"{row['macs_speedup']:.2f}x",
            f"{latency['median_s']:.4g} [{latency['q1_s']:.4g}, {latency['q3_s']:.4g}]" if latency else "–",
            f"{row['speedup']:.2f}x" + (NOISE_MARK if above_macs(row) else "") if "speedup" in row else "–",
            *(_number(flat[m]) for m in metric_names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if any(above_macs(row) for row in report["results"]):
        lines += [
            "",
            (
                "(noise): measured above the MAC speedup, which skipped work rarely beats: most likely timing "
                "noise; more --repeats narrow it."
            ),
        ]
    return "\n".join(lines) + "\n"


def above_macs(row: dict[str, Any]) -> bool:
    """A measured speedup above the MAC speedup: skipped work saves about its share of the MACs in time, so the
    excess is most likely timing noise."""
    return "speedup" in row and row["speedup"] > row["macs_speedup"]


def write_results(report: dict[str, Any], out: Path) -> None:
    write_json(report, out / "results.json")
    write_json({}, out / "results.csv", text=to_csv(report))
    write_json({}, out / "results.md", text=to_markdown(report))


# What `ecad report --eval` reads back.
RESULTS_SCHEMA = {
    "type": "object",
    "required": ["config", "num_steps", "height", "width", "images", "environment", "results"],
    "properties": {
        "config": {"type": "object", "required": ["model"]},
        "environment": {"type": "object", "required": ["device_name", "latency_batch_size", "repeats"]},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "source", "key", "recompute_fraction", "macs_speedup", "metrics"],
                "properties": {
                    "name": {"type": "string"},
                    "key": {"type": "string"},
                    "metrics": {"type": "object"},
                    "recompute_fraction": {"type": "number"},
                    "macs_speedup": {"type": "number"},
                },
            },
        },
    },
}


def read_results(out: str | Path) -> dict[str, Any]:
    path = Path(out) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no eval results at {path}; run `ecad eval --out {out}` first.")
    return read_json(path, RESULTS_SCHEMA, fix=f"run `ecad eval --out {out}` again to write it")
