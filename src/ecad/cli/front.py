"""``ecad front RUN_DIR``: the Pareto front of a search, the schedule to pick from it, and the command to use it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

FRONT_ORDER = (
    "front/000.json is the cheapest schedule (fastest, lowest quality); the numbers grow with cost towards no caching."
)


def add_max_loss(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-loss",
        type=float,
        default=5.0,
        metavar="PERCENT",
        help="the suggested schedule is the fastest whose quality is at most PERCENT below no caching",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "front",
        help="list the Pareto front of a search run and suggest a schedule",
        description="List the Pareto front of a search run (one schedule file per point), "
        "suggest the fastest schedule within --max-loss of no caching, and print "
        "the command that uses it. " + FRONT_ORDER,
    )
    parser.add_argument("run_dir", help="search run directory (ecad search --out, ecad demo --out)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the front as a JSON list (each row with its path, command and whether suggested)",
    )
    parser.add_argument(
        "--suggested",
        action="store_true",
        help="print only the suggested schedule's path, for scripts: cp \"$(ecad front RUN "
        '--suggested)" my_schedule.json',
    )
    add_max_loss(parser)
    parser.set_defaults(run=run)


def front_lines(run_dir: str | Path, max_loss: float) -> tuple[list[str], list[dict[str, Any]]]:
    """The human-readable front of a run (also printed by ``ecad demo``) and its rows with paths and commands."""
    from ..search import RunDirectory, speedup_label
    from ..search.suggest import calibration_note, generate_command, suggest

    run = RunDirectory(run_dir)
    summary, config = run.read_front(), run.load_config()
    rows, reference = summary["front"], (summary.get("no_cache") or {}).get("quality")
    suggestion = suggest(rows, reference, max_loss / 100)
    label = speedup_label(config.cost)
    calibration = len(config.prompts) * config.images_per_prompt
    out = []
    for row in rows:
        path = Path(run_dir) / row["file"]
        out.append(
            {
                **row,
                "path": str(path),
                "suggested": suggestion is not None and row is suggestion.row,
                "command": generate_command(config.model, path, config.prompts[0]),
            }
        )
    uncached = f"; no caching {reference:.4f}" if reference is not None else ""
    width = max([len("file"), *(len(r["path"]) for r in out)])
    lines = [
        f"{len(rows)} schedules on the front of {run_dir} ({config.metric} on {calibration} calibration rows"
        f"{uncached}). {FRONT_ORDER}",
        f"  {'file':<{width}}  {label}  {config.metric:>12}",
    ]
    for row in out:
        mark = "*" if row["suggested"] else " "
        lines.append(f"{mark} {row['path']:<{width}}  {row['speedup']:>{len(label) - 1}.2f}x  {row['quality']:>12.4f}")
    if suggestion is not None:
        chosen = next(r for r in out if r["suggested"])
        lines += [
            f"* suggested: {suggestion.reason(config.metric, label)}",
            f"  use it: {chosen['command']}",
            "  (any other file above works the same way in --schedule)",
        ]
    note = calibration_note(rows, reference, calibration, config.metric)
    if note:
        lines.append(f"note: {note}")
    lines.append(run.compute_spent())
    return lines, out


def run(args: argparse.Namespace) -> int:
    lines, rows = front_lines(args.run_dir, args.max_loss)
    if args.suggested:
        chosen = next((row["path"] for row in rows if row["suggested"]), None)
        if chosen is None:
            raise ValueError(f"{args.run_dir} has no front schedule to suggest yet; run or resume the search first.")
        print(chosen)
        return 0
    if args.json:
        print(json.dumps(rows))
        return 0
    print("\n".join(lines))
    return 0
