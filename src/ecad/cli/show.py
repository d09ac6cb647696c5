"""``ecad show FILE``: a schedule as a picture plus its statistics."""

from __future__ import annotations

import argparse
import json

from ..schedule import CacheSchedule


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("show", help="print a schedule as a picture with its statistics")
    parser.add_argument("file", help="schedule JSON (ecad or paper format)")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON only")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    schedule = CacheSchedule.load(args.file)
    stats = schedule.stats()
    if args.json:
        print(json.dumps(stats))
        return 0
    print(schedule.render())
    print()
    name = schedule.metadata.get("name") or args.file
    print(f"{name}: {stats['steps']} steps x {stats['blocks']} blocks x {len(stats['components'])} components")
    print(f"recomputes {stats['recompute_bits']}/{stats['possible_bits']} ({stats['recompute_fraction']:.1%}); "
          f"full steps {stats['full_steps']}, fully cached steps {stats['cached_steps']}")
    print("per component: " + ", ".join(f"{k} {v:.1%}" for k, v in stats["per_component_fraction"].items()))
    macs = schedule.metadata.get("macs")
    if macs:
        print(f"MACs ({macs.get('convention', '?')} convention): {macs['total_macs'] / 1e12:.4f} T")
    return 0
