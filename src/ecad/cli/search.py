"""``ecad search``: find the quality/cost Pareto front of cache schedules for a model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..names import (
    ACTIONS,
    CONVENTIONS,
    COSTS,
    DTYPE_NAMES,
    EXECUTOR_NAMES,
    METRIC_NAMES,
    PROMPT_SETS,
    STRATEGIES,
    TINY_SHAPES,
)
from ..validation import real, whole
from . import arguments

if TYPE_CHECKING:
    from ..search import SearchConfig

# Settings unset on the command line: a new run takes the default, --resume the run's.
STRATEGY_SETTINGS = ("race_rows", "race_confidence", "race_first_generation", "screen", "compile", "compile_backend")
PROMPTS_HELP = (
    f"prompt file (txt; json list; tsv/csv with a prompt column) or a built-in set: "
    f"{', '.join(PROMPT_SETS)} (tiny-shapes training captions; held-out captions for evaluation)"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "search",
        help="NSGA-II search for cache schedules (resumable)",
        description="Search the quality/cost Pareto front of cache schedules with NSGA-II; "
        "resumable with --resume after any stop. List the result with `ecad front`.",
    )
    parser.add_argument("--model", required=True, help="tiny-shapes, a pipeline folder or a hub id")
    parser.add_argument("--prompts", help=PROMPTS_HELP + "; required for a new run")
    parser.add_argument("--limit", type=arguments.positive, help="use only the first N prompts")
    parser.add_argument("--metric", default="fidelity", choices=METRIC_NAMES, help="quality to maximise")
    parser.add_argument(
        "--population", type=arguments.typed(whole(2)), default=72, help="schedules per generation (the paper's 72)"
    )
    parser.add_argument("--generations", type=arguments.positive, default=100, help="may grow on --resume")
    parser.add_argument(
        "--images-per-prompt", type=arguments.positive, default=1, help="seeds SEED..SEED+K-1 for every prompt"
    )
    parser.add_argument("--steps", type=arguments.typed(whole(2)), default=20, help="denoising steps")
    parser.add_argument("--height", type=arguments.pixels, help="default: the model's")
    parser.add_argument("--width", type=arguments.pixels, help="default: the model's")
    parser.add_argument(
        "--guidance",
        type=arguments.guidance,
        help="classifier-free guidance (default: 3 on tiny-shapes, else 4.5; --resume keeps the run's)",
    )
    parser.add_argument("--batch-size", type=arguments.positive, default=8, help="images generated per pipeline call")
    parser.add_argument("--seed", type=arguments.count, default=0, help="seeds of the calibration noise and of NSGA-II")
    parser.add_argument(
        "--cost",
        choices=COSTS,
        default="macs",
        help="macs: the cost model; latency: seconds per component measured on --device",
    )
    parser.add_argument(
        "--convention",
        choices=CONVENTIONS,
        default="full",
        help="MAC counting: full (attention core included) or paper",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="race (default for a new run with a per-row metric and at least 32 calibration rows): "
        "fast, and each new candidate scored on the first eighth of the rows, the rest only if no "
        "cheaper front point beats it there; fast (the default otherwise): the paper's "
        "evaluations with shared step prefixes computed once (exact); paper: the paper's search "
        "reproduced, each candidate generated on its own; --resume keeps the run's",
    )
    parser.add_argument(
        "--race-rows",
        type=arguments.typed(real(above=0, maximum=1), float),
        help="race: the share of the calibration rows a new candidate is scored on first (default "
        "0.125, at least 2 rows)",
    )
    parser.add_argument(
        "--race-confidence",
        type=arguments.typed(real(0.5, 0.999), float),
        help="race: the one-sided confidence a cheaper front point must beat a candidate with on the "
        "first rows to reject it (default 0.5: a higher mean there; 0.95: a t bound)",
    )
    parser.add_argument(
        "--race-first-generation",
        action=argparse.BooleanOptionalAction,
        help="race: race the first generation too, each candidate against the generation's own on the "
        "first rows (there is no front yet; no caching is always scored in full; default: off)",
    )
    parser.add_argument(
        "--screen",
        type=arguments.positive,
        help="fast or race: make K times each generation's offspring and evaluate those a ridge model "
        "of the evaluated schedules ranks best (default 1: no screening)",
    )
    parser.add_argument(
        "--budget",
        type=arguments.typed(real(above=0), float),
        help="stop once this many image-equivalents are spent (one = one uncached image; a cached "
        "one counts its MACs); resumable, may grow on --resume",
    )
    parser.add_argument(
        "--actions",
        choices=ACTIONS,
        default="reuse",
        metavar="|".join(ACTIONS),
        help="what a skipped component may do: reuse its last output (the paper's search), or also "
        "forecast it from its last computed outputs (first-order TaylorSeer extrapolation)",
    )
    parser.add_argument("--device", type=arguments.device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default="float32", help="weights and compute dtype")
    arguments.add_compile(parser, "--cost latency: measure the latency cost with the transformer compiled")
    parser.add_argument(
        "--executor",
        choices=EXECUTOR_NAMES,
        default="local",
        help="local: in this process; ray: one actor per GPU/CPU slot (pip install 'ecad[ray]')",
    )
    parser.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    parser.add_argument(
        "--workers", type=arguments.positive, help="Ray actors (default: one per GPU, else one per CPU slot)"
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=arguments.typed(real(0), float),
        help="GPUs per Ray actor (default: 1 if the cluster has GPUs)",
    )
    parser.add_argument(
        "--cpus-per-worker", type=arguments.typed(real(above=0), float), default=1.0, help="CPU slots per Ray actor"
    )
    parser.add_argument("--out", required=True, help="run directory (config, evaluations, front files)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    from ..models.prompts import load_prompts
    from ..models.tiny_shapes import GUIDANCE_SCALE as TINY_SHAPES_GUIDANCE
    from ..search import RunDirectory, SearchConfig

    stored = RunDirectory(args.out).load_config() if _resumes(args) else None
    if stored is not None and args.prompts is None:
        prompts = stored.prompts
    elif args.prompts is None:
        raise ValueError("--prompts is required for a new search (a file or a built-in set such as tiny-shapes).")
    else:
        prompts = load_prompts(args.prompts, args.limit)
    strategy = args.strategy or (stored.strategy if stored is not None else None)  # None: the config's default
    guidance = (
        args.guidance
        if args.guidance is not None
        else (
            stored.guidance_scale if stored is not None else TINY_SHAPES_GUIDANCE if args.model == TINY_SHAPES else None
        )
    )
    kept = {name: getattr(stored, name) for name in STRATEGY_SETTINGS} if stored else {}
    given = {name: value for name in STRATEGY_SETTINGS if (value := getattr(args, name)) is not None}
    return SearchConfig(
        model=args.model,
        prompts=prompts,
        metric=args.metric,
        population=args.population,
        generations=args.generations,
        images_per_prompt=args.images_per_prompt,
        num_steps=args.steps,
        height=args.height,
        width=args.width,
        batch_size=args.batch_size,
        seed=args.seed,
        cost=args.cost,
        convention=args.convention,
        device=args.device,
        dtype=args.dtype,
        strategy=strategy,
        budget=args.budget,
        actions=args.actions,
        **(kept | given),
        **({} if guidance is None else {"guidance_scale": guidance}),  # None: the config's default
    )


def _resumes(args: argparse.Namespace) -> bool:
    """Whether there is a run to resume: ``--resume`` with no ``config.json`` in ``--out`` (nothing yet, e.g. after a
    first start that failed and cleaned up) starts the run as a command without it would."""
    from ..search import RunDirectory

    return args.resume and RunDirectory(args.out).config_path.exists()


def run(args: argparse.Namespace) -> int:
    from ..search import search

    out = Path(args.out)
    if args.resume and not _resumes(args) and not (out.is_dir() and any(out.iterdir())):  # else refused as foreign
        print(f"--resume: there is no search run in {args.out} yet; starting it")
    options = {}
    if args.executor == "ray":
        options = dict(
            address=args.ray_address,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            cpus_per_worker=args.cpus_per_worker,
        )
    result = search(config_from_args(args), args.out, resume=args.resume, executor=args.executor, **options)
    if result.stopped:
        print(result.stopped)
    print(
        f"{result.evaluations} schedules evaluated; front of {len(result.front)} in {args.out}/front.json "
        f"(plot: {args.out}/front.png); list it and get the suggested schedule with `ecad front {args.out}`"
    )
    return 0
