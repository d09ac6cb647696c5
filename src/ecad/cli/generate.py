"""``ecad generate``: one image from a model, with or without a cache schedule."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from ..hooks import enable_cache
from ..loading import DTYPES, check_image_size, default_size, load_pipeline, pipeline_call_kwargs
from ..schedule import CacheSchedule, ScheduleError
from . import arguments

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("generate", help="generate an image, optionally under a cache schedule")
    parser.add_argument("--model", required=True, help="pipeline folder, hub id or preset name")
    parser.add_argument("--schedule", help="schedule file; without it the model runs uncached")
    parser.add_argument("--prompt", type=arguments.text, required=True)
    parser.add_argument("--out", type=arguments.image_file, required=True, help="output image path (.png)")
    parser.add_argument("--steps", type=arguments.positive, help="denoising steps (default: the schedule's, else 20)")
    parser.add_argument("--resample", action="store_true", help="map the schedule to --steps if they differ")
    parser.add_argument("--seed", type=arguments.count, default=0)
    parser.add_argument("--height", type=arguments.pixels)
    parser.add_argument("--width", type=arguments.pixels)
    parser.add_argument("--guidance", type=arguments.guidance, default=4.5)
    parser.add_argument("--device", type=arguments.device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    schedule = CacheSchedule.load(args.schedule) if args.schedule else None
    steps = args.steps or (schedule.num_steps if schedule else 20)
    if schedule is not None and steps != schedule.num_steps and not args.resample:
        raise ScheduleError(f"--steps {steps}: the generation runs {steps} denoising steps but the schedule has "
                            f"{schedule.num_steps}; pass --resample to map it, or --steps {schedule.num_steps}.")
    check_image_size(args.model, args.height, args.width)
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    check_image_size(pipe, args.height, args.width)
    size = default_size(pipe)
    kwargs = dict(
        prompt=args.prompt, num_inference_steps=steps, guidance_scale=args.guidance,
        height=args.height or size, width=args.width or size,
        generator=torch.Generator("cpu").manual_seed(args.seed), **pipeline_call_kwargs(pipe),
    )
    start = time.perf_counter()
    if schedule is None:
        image = pipe(**kwargs).images[0]
    else:
        with enable_cache(pipe, schedule, resample=args.resample):
            image = pipe(**kwargs).images[0]
    logger.info("generated in %.2f s (%s)", time.perf_counter() - start, "uncached" if schedule is None else "cached")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    print(out)
    return 0
