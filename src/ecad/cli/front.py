"""``ecad front RUN_DIR``: the Pareto front of a search, to pick a schedule from."""

from __future__ import annotations

import argparse
import json

from ..search import RunDirectory


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("front", help="list the Pareto front of a search run")
    parser.add_argument("run_dir")
    parser.add_argument("--json", action="store_true", help="print the front as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    front = RunDirectory(args.run_dir).read_front()
    if args.json:
        print(json.dumps(front["front"]))
        return 0
    print(f"{'cost (MACs)':>14} {'speedup':>8} {'quality':>9}  file")
    for row in front["front"]:
        print(f"{row['cost']:>14.4g} {row['speedup']:>7.2f}x {row['quality']:>9.4f}  {args.run_dir}/{row['file']}")
    return 0
