"""``ecad eval``: schedules and baselines on held-out prompts: images, metrics, MACs, measured latency, speedups."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluation import EvalConfig, evaluate
from ..loading import DTYPES
from ..macs import CONVENTIONS
from ..metrics import get_metric
from ..prompts import load_prompts


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _baselines(text: str) -> list[str]:
    """Specs separated by commas, where a number after a comma continues the spec before (dbcache:1,0,0.08)."""
    specs: list[str] = []
    for part in _names(text):
        if specs and ":" in specs[-1] and _is_number(part):
            specs[-1] += f",{part}"
        else:
            specs.append(part)
    return specs


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate schedules and baselines: quality, MACs, latency (resumable)")
    parser.add_argument("--model", required=True, help="pipeline folder, hub id or preset name")
    parser.add_argument("--schedules", nargs="*", default=[], metavar="FILE", help="schedule files to evaluate")
    parser.add_argument("--baselines", type=_baselines, default=[],
                        help="comma-separated: ecad's fora:N, tgate[:STEP], delta-dit[:N], and other libraries' "
                             "methods: fbcache, pab, fastercache, taylorseer-diffusers, magcache (diffusers), dbcache, "
                             "dbcache-taylorseer (cache-dit, ecad[peers]); a method's name alone is its default "
                             "sweep, name:ARGS one setting, e.g. fbcache:0.1, dbcache:1,0,0.08 (no caching is always "
                             "included)")
    parser.add_argument("--prompts", required=True, help="prompt file (txt, json, tsv/csv) or built-in set")
    parser.add_argument("--limit", type=int, help="use only the first N prompts")
    parser.add_argument("--metrics", type=_names, default=["fidelity"],
                        help="comma-separated metric names (default: fidelity)")
    parser.add_argument("--fid-reference", help="folder of reference images for fid (default: the uncached images)")
    parser.add_argument("--images-per-prompt", type=int, default=1)
    parser.add_argument("--steps", type=int, help="denoising steps (default: the first schedule's, else 20)")
    parser.add_argument("--resample", action="store_true", help="map schedules with other step counts to --steps")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--guidance", type=float, default=4.5)
    parser.add_argument("--batch-size", type=int, default=8, help="images generated per pipeline call")
    parser.add_argument("--seed", type=int, default=0, help="row i of a prompt uses seed SEED+i")
    parser.add_argument("--convention", choices=CONVENTIONS, default="full", help="MAC counting convention")
    parser.add_argument("--warmup", type=int, default=2, help="untimed pipeline calls before timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed pipeline calls per schedule (0: no latency)")
    parser.add_argument("--latency-batch", type=int,
                        help="images per timed pipeline call (default: the first scored batch, --batch-size images)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--out", required=True, help="eval directory (re-run with the same --out to resume)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = EvalConfig(
        model=args.model, prompts=load_prompts(args.prompts, args.limit), schedules=args.schedules,
        baselines=args.baselines, metrics=args.metrics, images_per_prompt=args.images_per_prompt,
        num_steps=args.steps, height=args.height, width=args.width, guidance_scale=args.guidance,
        batch_size=args.batch_size, seed=args.seed, resample=args.resample, convention=args.convention,
        warmup=args.warmup, repeats=args.repeats, latency_batch=args.latency_batch, device=args.device,
        dtype=args.dtype,
    )
    metrics = {"fid": get_metric("fid", reference=args.fid_reference)} if args.fid_reference else None
    if metrics and "fid" not in config.metrics:
        raise ValueError("--fid-reference is given but fid is not in --metrics.")
    evaluate(config, args.out, metrics=metrics)
    print((Path(args.out) / "results.md").read_text(), end="")
    print(f"results: {args.out}/results.csv, {args.out}/results.json; images: {args.out}/images/")
    return 0
