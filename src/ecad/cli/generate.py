"""``ecad generate``: one image from a model, with or without a cache schedule.

Settings not given on the command line come from the schedule's metadata (the steps, guidance and size it was found
under), then from the pipeline's own defaults; a setting given that differs from the schedule's is warned about.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..names import DTYPE_NAMES
from . import arguments

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "generate",
        help="generate an image, optionally under a cache schedule",
        description="Generate one image, uncached or under a cache schedule. Steps, guidance "
        "and size default to the ones the schedule was found under.",
    )
    parser.add_argument("--model", required=True, help="tiny-shapes, a pipeline folder, a hub id or a preset name")
    parser.add_argument("--schedule", help="schedule file; without it the model runs uncached")
    parser.add_argument("--prompt", type=arguments.text, required=True, help="the text to generate from")
    parser.add_argument("--out", type=arguments.image_file, required=True, help="output image path (.png)")
    parser.add_argument("--steps", type=arguments.positive, help="denoising steps (default: the schedule's, else 20)")
    parser.add_argument("--resample", action="store_true", help="map the schedule to --steps if they differ")
    parser.add_argument("--seed", type=arguments.count, default=0, help="seed of the initial noise")
    parser.add_argument("--height", type=arguments.pixels, help="default: the schedule's, else the model's")
    parser.add_argument("--width", type=arguments.pixels, help="default: the schedule's, else the model's")
    parser.add_argument(
        "--guidance",
        type=arguments.guidance,
        help="classifier-free guidance scale (default: the schedule's, else the pipeline's: "
        "4.5 for PixArt, 3 for tiny-shapes)",
    )
    parser.add_argument("--device", type=arguments.device, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default="float32", help="weights and compute dtype")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..models.loading import call_default, check_image_size, default_size, load_pipeline, pipeline_call_kwargs
    from ..runtime.cache import enable_cache
    from ..runtime.provenance import GenerationSettings, warn_differences
    from ..schedule import CacheSchedule, ScheduleError

    schedule = CacheSchedule.load(args.schedule) if args.schedule else None
    steps = args.steps or (schedule.num_steps if schedule else 20)
    if schedule is not None and steps != schedule.num_steps and not args.resample:
        raise ScheduleError(
            f"the schedule has {schedule.num_steps} steps but --steps {steps} was given; pass "
            f"--steps {schedule.num_steps} (or leave --steps out), or add --resample to map the "
            f"schedule to {steps} steps."
        )
    check_image_size(args.model, args.height, args.width)
    found = (GenerationSettings.of(schedule) if schedule else None) or GenerationSettings()
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    check_image_size(pipe, args.height, args.width)
    size = default_size(pipe)
    guidance = args.guidance if args.guidance is not None else found.guidance_scale
    height, width = args.height or found.height or size, args.width or found.width or size
    if schedule is not None:
        taken = [
            f"{name} {value:g}"
            for name, value, given in (
                ("guidance", found.guidance_scale, args.guidance),
                ("height", found.height, args.height),
                ("width", found.width, args.width),
            )
            if value is not None and given is None
        ]
        if taken:
            logger.info("using the schedule's settings: %s", ", ".join(taken))
        call = GenerationSettings(
            args.model, steps, guidance if guidance is not None else call_default(pipe, "guidance_scale"), height, width
        )
        warn_differences(schedule, call, "ecad generate")
    kwargs = dict(
        prompt=args.prompt,
        num_inference_steps=steps,
        height=height,
        width=width,
        generator=torch.Generator("cpu").manual_seed(args.seed),
        **pipeline_call_kwargs(pipe),
    )
    if guidance is not None:
        kwargs["guidance_scale"] = guidance
    pipe.set_progress_bar_config(desc="denoising", leave=False)
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
