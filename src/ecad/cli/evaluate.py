"""``ecad eval``: schedules and baselines on held-out prompts: images, metrics, MACs, measured latency, speedups."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..names import CONVENTIONS, DTYPE_NAMES, METRIC_NAMES, PEER_NAMES, default_metric
from . import arguments
from .search import PROMPTS_HELP

if TYPE_CHECKING:
    from ..evaluation import EvalConfig


def _baseline(name: str) -> object:
    """Checks a --baselines name while parsing (imported here: the parser must not import torch)."""
    from ..peers import check_baseline

    return check_baseline(name)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _baseline_specs(text: str) -> list[str]:
    """Specs separated by commas, where a number after a comma continues the spec before (dbcache:1,0,0.08)."""
    specs: list[str] = []
    for part in arguments.split_names(text):
        if specs and ":" in specs[-1] and _is_number(part):
            specs[-1] += f",{part}"
        else:
            specs.append(part)
    return specs


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate schedules and baselines: quality, MACs, latency (resumable)",
        description="Evaluate schedules and baselines against no caching on the same prompts "
        "and seeds: images, quality metrics, MACs, measured latency and speedups. "
        "Steps, guidance and size default to the first schedule's recorded ones. "
        "Re-run with the same --out to resume or to recompute metrics.",
    )
    parser.add_argument("--model", required=True, help="tiny-shapes, a pipeline folder, a hub id or a preset name")
    parser.add_argument("--schedules", nargs="*", default=[], metavar="FILE", help="schedule files to evaluate")
    parser.add_argument(
        "--baselines",
        type=arguments.names(check=_baseline, split=_baseline_specs),
        default=[],
        help="comma-separated: ecad's fora:N, taylorseer:N[:ORDER], tgate[:STEP], delta-dit[:N], and "
        f"other libraries' methods: {', '.join(PEER_NAMES)} (diffusers; dbcache* from cache-dit, "
        "ecad[peers]); a method's name alone is its default sweep, name:ARGS one setting, e.g. "
        "fbcache:0.1, dbcache:1,0,0.08 (no caching is always included)",
    )
    parser.add_argument("--prompts", required=True, help=PROMPTS_HELP)
    parser.add_argument("--limit", type=arguments.positive, help="use only the first N prompts")
    parser.add_argument(
        "--metrics",
        type=arguments.names(METRIC_NAMES, what="metric"),
        help=f"comma-separated metric names: {', '.join(METRIC_NAMES)} (default: tiny-reward on "
        "tiny-shapes, else fidelity)",
    )
    parser.add_argument("--fid-reference", help="folder of reference images for fid (default: the uncached images)")
    parser.add_argument(
        "--images-per-prompt", type=arguments.positive, default=1, help="seeds SEED..SEED+K-1 for every prompt"
    )
    parser.add_argument(
        "--steps", type=arguments.positive, help="denoising steps (default: the first schedule's, else 20)"
    )
    parser.add_argument("--resample", action="store_true", help="map schedules with other step counts to --steps")
    parser.add_argument("--height", type=arguments.pixels, help="default: the first schedule's, else the model's")
    parser.add_argument("--width", type=arguments.pixels, help="default: the first schedule's, else the model's")
    parser.add_argument(
        "--guidance",
        type=arguments.guidance,
        help="classifier-free guidance (default: the first schedule's, else the pipeline's: 4.5 for "
        "PixArt, 3 for tiny-shapes)",
    )
    parser.add_argument("--batch-size", type=arguments.positive, default=8, help="images generated per pipeline call")
    parser.add_argument("--seed", type=arguments.count, default=0, help="row i of a prompt uses seed SEED+i")
    parser.add_argument("--convention", choices=CONVENTIONS, default="full", help="MAC counting convention")
    parser.add_argument("--warmup", type=arguments.count, default=2, help="untimed pipeline calls before timing")
    parser.add_argument(
        "--repeats", type=arguments.count, default=5, help="timed pipeline calls per schedule (0: no latency)"
    )
    parser.add_argument(
        "--latency-batch",
        type=arguments.positive,
        help="images per timed pipeline call (default: the first scored batch, --batch-size images)",
    )
    parser.add_argument("--device", type=arguments.device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default="float32", help="weights and compute dtype")
    arguments.add_compile(parser, "time the pipeline calls with the transformer compiled (images are generated eager)")
    parser.add_argument("--out", required=True, help="eval directory (re-run with the same --out to resume)")
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    from ..evaluation import EvalConfig
    from ..models.prompts import load_prompts

    metric_names = args.metrics or [default_metric(args.model)]
    if args.fid_reference and "fid" not in metric_names:
        raise ValueError("--fid-reference is given but fid is not in --metrics.")
    if args.fid_reference and not Path(args.fid_reference).is_dir():
        raise FileNotFoundError(f"--fid-reference: no such folder: {args.fid_reference}")
    return EvalConfig(
        model=args.model,
        prompts=load_prompts(args.prompts, args.limit),
        schedules=args.schedules,
        baselines=args.baselines,
        metrics=metric_names,
        images_per_prompt=args.images_per_prompt,
        num_steps=args.steps,
        height=args.height,
        width=args.width,
        guidance_scale=args.guidance,
        batch_size=args.batch_size,
        seed=args.seed,
        resample=args.resample,
        convention=args.convention,
        warmup=args.warmup,
        repeats=args.repeats,
        latency_batch=args.latency_batch,
        device=args.device,
        dtype=args.dtype,
        compile=args.compile,
        compile_backend=args.compile_backend,
    )


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate
    from ..metrics import get_metric

    config = config_from_args(args)
    metrics = {"fid": get_metric("fid", reference=args.fid_reference)} if args.fid_reference else None
    evaluate(config, args.out, metrics=metrics)
    print((Path(args.out) / "results.md").read_text(), end="")
    print(f"results: {args.out}/results.csv, {args.out}/results.json; images: {args.out}/images/")
    return 0
