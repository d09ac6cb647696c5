"""``ecad front RUN_DIR``: the Pareto front of a search, to pick a schedule from."""

from __future__ import annotations

import argparse
import json

from ..search import RunDirectory, speedup_label


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("front", help="list the Pareto front of a search run")
    parser.add_argument("run_dir")
    parser.add_argument("--json", action="store_true", help="print the front as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    run = RunDirectory(args.run_dir)
    front = run.read_front()
    if args.json:
        print(json.dumps(front["front"]))
        return 0
    cost = run.load_config().cost
    label = speedup_label(cost)
    print(f"{'cost (MACs)' if cost == 'macs' else 'cost (s)':>14} {label:>{len(label)}} {'quality':>9}  file")
    for row in front["front"]:
        print(f"{row['cost']:>14.4g} {row['speedup']:>{len(label) - 1}.2f}x {row['quality']:>9.4f}  "
              f"{args.run_dir}/{row['file']}")
    return 0
