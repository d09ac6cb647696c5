"""``ecad show FILE``: a schedule as a picture plus its statistics and the settings it was found under."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "show",
        help="print a schedule as a picture with its statistics",
        description="Print a schedule as a picture (one row per component x block, one column "
        "per step: █ recompute, · reuse, f forecast), its statistics, and what its "
        "metadata records.",
    )
    parser.add_argument("file", help="schedule JSON (ecad or paper format)")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON only")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import CacheSchedule  # the public name: paper files load with the model families' component names
    from ..runtime.provenance import describe_metadata

    schedule = CacheSchedule.load(args.file)
    stats = schedule.stats()
    if args.json:
        print(json.dumps(stats))
        return 0
    print(schedule.render())
    print()
    name = schedule.metadata.get("name") or args.file
    print(f"{name}: {stats['steps']} steps x {stats['blocks']} blocks x {len(stats['components'])} components")
    print(
        f"recomputes {stats['recompute_bits']}/{stats['possible_bits']} ({stats['recompute_fraction']:.1%}); "
        f"full steps {stats['full_steps']}, fully cached steps {stats['cached_steps']}"
    )
    if schedule.forecasts:
        print(
            f"forecasts {stats['forecast_bits']}/{stats['possible_bits']} ({stats['forecast_fraction']:.1%}, "
            f"order {schedule.forecast_order}; 'f' where fewer than two outputs were computed runs as a reuse)"
        )
    print("per component: " + ", ".join(f"{k} {v:.1%}" for k, v in stats["per_component_fraction"].items()))
    for line in describe_metadata(schedule):
        print(line)
    return 0
