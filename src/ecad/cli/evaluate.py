"""``ecad eval``: schedules and baselines on held-out prompts: images, metrics, MACs, measured latency, speedups."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluation import EvalConfig, evaluate
from ..heuristics import parse_baseline
from ..loading import DTYPES
from ..macs import CONVENTIONS
from ..metrics import METRICS, get_metric
from ..prompts import load_prompts
from . import arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate schedules and baselines: quality, MACs, latency (resumable)")
    parser.add_argument("--model", required=True, help="pipeline folder, hub id or preset name")
    parser.add_argument("--schedules", nargs="*", default=[], metavar="FILE", help="schedule files to evaluate")
    parser.add_argument("--baselines", type=arguments.names(check=parse_baseline), default=[],
                        help="comma-separated: fora:N, tgate[:STEP], delta-dit[:N] (no caching is always included)")
    parser.add_argument("--prompts", required=True, help="prompt file (txt, json, tsv/csv) or built-in set")
    parser.add_argument("--limit", type=arguments.positive, help="use only the first N prompts")
    parser.add_argument("--metrics", type=arguments.names(METRICS, what="metric"), default=["fidelity"],
                        help="comma-separated metric names (default: fidelity)")
    parser.add_argument("--fid-reference", help="folder of reference images for fid (default: the uncached images)")
    parser.add_argument("--images-per-prompt", type=arguments.positive, default=1)
    parser.add_argument("--steps", type=arguments.positive,
                        help="denoising steps (default: the first schedule's, else 20)")
    parser.add_argument("--resample", action="store_true", help="map schedules with other step counts to --steps")
    parser.add_argument("--height", type=arguments.pixels)
    parser.add_argument("--width", type=arguments.pixels)
    parser.add_argument("--guidance", type=arguments.guidance, default=4.5)
    parser.add_argument("--batch-size", type=arguments.positive, default=8, help="images generated per pipeline call")
    parser.add_argument("--seed", type=arguments.count, default=0, help="row i of a prompt uses seed SEED+i")
    parser.add_argument("--convention", choices=CONVENTIONS, default="full", help="MAC counting convention")
    parser.add_argument("--warmup", type=arguments.count, default=2, help="untimed pipeline calls before timing")
    parser.add_argument("--repeats", type=arguments.count, default=5,
                        help="timed pipeline calls per schedule (0: no latency)")
    parser.add_argument("--latency-batch", type=arguments.positive, default=1, help="images per timed pipeline call")
    parser.add_argument("--device", type=arguments.device, default="auto")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--out", required=True, help="eval directory (re-run with the same --out to resume)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.fid_reference and "fid" not in args.metrics:
        raise ValueError("--fid-reference is given but fid is not in --metrics.")
    if args.fid_reference and not Path(args.fid_reference).is_dir():
        raise FileNotFoundError(f"--fid-reference: no such folder: {args.fid_reference}")
    config = EvalConfig(
        model=args.model, prompts=load_prompts(args.prompts, args.limit), schedules=args.schedules,
        baselines=args.baselines, metrics=args.metrics, images_per_prompt=args.images_per_prompt,
        num_steps=args.steps, height=args.height, width=args.width, guidance_scale=args.guidance,
        batch_size=args.batch_size, seed=args.seed, resample=args.resample, convention=args.convention,
        warmup=args.warmup, repeats=args.repeats, latency_batch=args.latency_batch, device=args.device,
        dtype=args.dtype,
    )
    metrics = {"fid": get_metric("fid", reference=args.fid_reference)} if args.fid_reference else None
    evaluate(config, args.out, metrics=metrics)
    print((Path(args.out) / "results.md").read_text(), end="")
    print(f"results: {args.out}/results.csv, {args.out}/results.json; images: {args.out}/images/")
    return 0
