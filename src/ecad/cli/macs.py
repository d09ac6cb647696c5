"""``ecad macs``: what a schedule costs on an architecture, and its MAC speedup."""

from __future__ import annotations

import argparse
import json

from ..names import CONVENTIONS
from ..units import format_macs, mac_unit
from . import arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "macs",
        help="count the MACs of a schedule (or of no caching) on an architecture",
        description="Count the MACs of a schedule, or of no caching, on an architecture preset "
        "or a model's transformer config (on the meta device: no weights needed).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", help="architecture preset, e.g. pixart-alpha, flux-dev, sd3-medium")
    source.add_argument(
        "--model",
        help="pipeline folder, hub id or tiny-shapes: its call is observed on the pipeline "
        "built from its configs without weights (a transformer-only folder: inputs assumed)",
    )
    parser.add_argument(
        "--height", type=arguments.positive, help="image height in pixels (default: the schedule's, else 256)"
    )
    parser.add_argument(
        "--width", type=arguments.positive, help="image width in pixels (default: the schedule's, else 256)"
    )
    parser.add_argument(
        "--schedule",
        help="schedule file (its recorded size and guidance are the defaults); without it, the cost of no caching",
    )
    parser.add_argument("--steps", type=arguments.positive, default=20, help="steps when no schedule is given")
    parser.add_argument(
        "--convention",
        choices=CONVENTIONS,
        default="full",
        help="full: what the runtime runs, attention core included; paper: the ECAD paper's numbers",
    )
    parser.add_argument(
        "--guidance",
        type=arguments.guidance,
        help="--model: guidance scale of the observed call (default: the schedule's, else the pipeline's)",
    )
    parser.add_argument("--images", type=arguments.positive, default=1, help="--model: images per observed call")
    parser.add_argument(
        "--batch-size", type=arguments.positive, help="--arch: transformer batch (default 2: one image with CFG)"
    )
    parser.add_argument("--text-len", type=arguments.positive, help="--arch: text tokens (default: the architecture's)")
    parser.add_argument(
        "--frames",
        type=arguments.positive,
        help="--arch, video models: frames of the video (default: the family's usual length)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..adapters import find_preset
    from ..models.macs import count_macs, observes_pipeline
    from ..runtime.provenance import GenerationSettings
    from ..schedule import CacheSchedule

    schedule = CacheSchedule.load(args.schedule) if args.schedule else None
    found = (GenerationSettings.of(schedule) if schedule else None) or GenerationSettings()
    taken = [
        f"{name} {value:g}"
        for name, value, given in (
            ("height", found.height, args.height),
            ("width", found.width, args.width),
            ("guidance", found.guidance_scale if args.model else None, args.guidance),
        )
        if value is not None and given is None
    ]
    if taken and not args.json:
        print(f"using the schedule's settings: {', '.join(taken)}")
    height, width = args.height or found.height or 256, args.width or found.width or 256
    guidance = args.guidance if args.guidance is not None else found.guidance_scale
    if args.arch:
        find_preset(args.arch)
        table = count_macs(
            args.arch,
            height,
            width,
            convention=args.convention,
            batch_size=args.batch_size,
            text_len=args.text_len,
            frames=args.frames,
        )
    elif observes_pipeline(args.model) and args.convention != "paper":
        if args.batch_size is not None or args.text_len is not None or args.frames is not None:
            raise ValueError(
                "--batch-size, --text-len and --frames are for --arch: a pipeline's are observed from its "
                "call; use --images and --guidance."
            )
        table = count_macs(args.model, height, width, guidance_scale=guidance, images=args.images)
    else:
        table = count_macs(
            args.model,
            height,
            width,
            convention=args.convention,
            batch_size=args.batch_size,
            text_len=args.text_len,
            frames=args.frames,
        )
    schedule = schedule or table.full_schedule(args.steps)
    report = table.report(schedule)
    if args.json:
        print(json.dumps(report))
        return 0
    frames = f", {report['frames']} frames" if report["frames"] > 1 else ""
    print(
        f"{report['arch']} {height}x{width}{frames}, transformer batch {report['batch_size']}, "
        f"{report['text_len']} text tokens, {report['calls_per_step']} call(s) per step, {report['convention']} "
        f"convention"
    )
    print(f"counted: {report['counted']}")
    print(
        f"full step {format_macs(table.full_step_macs)} (paid at every step whatever the schedule: "
        f"{format_macs(table.outside_macs)})"
    )
    print(
        f"schedule: {format_macs(report['total_macs'])} of {format_macs(report['full_macs'])} "
        f"-> MAC speedup {report['mac_speedup']:.2f}x"
    )
    if report["convention"] == "paper" and report["pruned_total_macs"] != report["total_macs"]:
        print(
            f"what the runtime runs (dead recomputes skipped): {format_macs(report['pruned_total_macs'])} "
            f"-> MAC speedup {report['pruned_mac_speedup']:.2f}x"
        )
    scale, unit = mac_unit(max(report["per_step"]))
    print(f"per step ({unit}): " + " ".join(f"{m / scale:.1f}" for m in report["per_step"]))
    return 0
