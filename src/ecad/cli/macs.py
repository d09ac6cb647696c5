"""``ecad macs``: what a schedule costs on an architecture, and its MAC speedup."""

from __future__ import annotations

import argparse
import json

from ..names import CONVENTIONS


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("macs", help="count the MACs of a schedule (or of no caching) on an architecture",
                            description="Count the MACs of a schedule, or of no caching, on an architecture preset "
                                        "or a model's transformer config (on the meta device: no weights needed).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", help="architecture preset, e.g. pixart-alpha, flux-dev, sd3-medium")
    source.add_argument("--model", help="pipeline folder or hub id (only its transformer config is read)")
    parser.add_argument("--height", type=int, default=256, help="image height in pixels")
    parser.add_argument("--width", type=int, default=256, help="image width in pixels")
    parser.add_argument("--schedule", help="schedule file; without it, the cost of no caching")
    parser.add_argument("--steps", type=int, default=20, help="steps when no schedule is given")
    parser.add_argument("--convention", choices=CONVENTIONS, default="full",
                        help="full: attention core counted; paper: the ECAD paper's numbers")
    parser.add_argument("--batch-size", type=int, help="transformer batch (default 2: one image with CFG)")
    parser.add_argument("--text-len", type=int, help="text tokens (default: the architecture's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..adapters import find_preset
    from ..macs import count_macs
    from ..schedule import CacheSchedule

    if args.arch:
        find_preset(args.arch)
    table = count_macs(args.arch or args.model, args.height, args.width, convention=args.convention,
                       batch_size=args.batch_size, text_len=args.text_len)
    if args.schedule:
        schedule = CacheSchedule.load(args.schedule)
    else:
        schedule = table.full_schedule(args.steps)
    report = table.report(schedule)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['arch']} {args.height}x{args.width}, batch {report['batch_size']}, {report['text_len']} text "
          f"tokens, {report['convention']} convention")
    print(f"full step {table.full_step_macs / 1e9:.2f} GMAC (outside the blocks' components "
          f"{table.outside_macs / 1e9:.3f} GMAC)")
    print(f"schedule: {report['total_macs'] / 1e12:.4f} TMAC of {report['full_macs'] / 1e12:.4f} TMAC "
          f"-> {report['speedup']:.2f}x fewer MACs")
    if report["pruned_total_macs"] != report["total_macs"]:
        print(f"skipping outputs nothing reads (the runtime's default): {report['pruned_total_macs'] / 1e12:.4f} TMAC "
              f"-> {report['pruned_speedup']:.2f}x fewer MACs")
    print("per step (GMAC): " + " ".join(f"{m / 1e9:.1f}" for m in report["per_step"]))
    return 0
