"""``ecad demo``: the whole job on the embedded tiny-shapes model, in about a minute on a laptop CPU.

A small NSGA-II search (tiny-reward quality against MACs) seeded with the usual heuristics, then the run's front with
the schedule to use, its plot and an HTML report. Running it again continues the same run (``--generations`` can
grow).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..names import TINY_SHAPES
from ..validation import whole
from . import arguments
from .front import add_max_loss, front_lines

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="search cache schedules for the embedded tiny-shapes model (about a minute, CPU)",
        description="Search cache schedules for the embedded tiny-shapes model, write the front, "
        "its plot and an HTML report, and suggest the schedule to use.",
    )
    parser.add_argument("--out", default="ecad-demo", help="run directory (run again to continue it)")
    parser.add_argument("--population", type=arguments.typed(whole(2)), default=10, help="schedules per generation")
    parser.add_argument("--generations", type=arguments.positive, default=4, help="may grow when the demo is run again")
    parser.add_argument(
        "--prompts",
        type=arguments.typed(whole(1, 16)),
        default=6,
        metavar="N",
        help="how many tiny-shapes training captions to calibrate on (a count, not a file)",
    )
    parser.add_argument(
        "--samples", type=arguments.count, default=2, help="sample images per schedule in the report (0: none)"
    )
    add_max_loss(parser)
    parser.add_argument("--device", type=arguments.device, default="auto", help="auto, cpu, cuda, ...")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models.prompts import load_prompts
    from ..models.tiny_shapes import GUIDANCE_SCALE
    from ..report.html import build_report
    from ..search import RunDirectory, SearchConfig, search

    start = time.perf_counter()
    config = SearchConfig(
        model=TINY_SHAPES,
        prompts=load_prompts(TINY_SHAPES, limit=args.prompts),
        metric="tiny-reward",
        population=args.population,
        generations=args.generations,
        batch_size=16,
        device=args.device,
        guidance_scale=GUIDANCE_SCALE,
    )
    resume = RunDirectory(args.out).config_path.exists()
    search(config, args.out, resume=resume)
    searched = time.perf_counter()
    out = Path(args.out)
    report = build_report(out, out / "report.html", samples=args.samples)
    lines, _ = front_lines(out, args.max_loss)
    print("\n" + "\n".join(lines))
    print(f"\nfront plot: {out / 'front.png'}\nreport:     {report[0]}")
    logger.info(
        "demo done in %.0f s (search %.0f s, report %.0f s)",
        time.perf_counter() - start,
        searched - start,
        time.perf_counter() - searched,
    )
    return 0
