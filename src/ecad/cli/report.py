"""``ecad report RUN_DIR -o report.html``: an interactive page of a search's Pareto fronts, plus PNG plots."""

from __future__ import annotations

import argparse

from . import arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a search run (and PNG plots)",
        description="Write one self-contained HTML page of a search run (fronts per generation, "
        "schedules, sample images, an optional held-out evaluation), plus front.png "
        "and hypervolume.png beside it.",
    )
    parser.add_argument("run_dir", help="search run directory")
    parser.add_argument(
        "-o", "--out", default="report.html", help="HTML file; front.png and hypervolume.png go beside it"
    )
    parser.add_argument("--eval", dest="eval_dir", help="an `ecad eval` directory: its table and images are shown")
    parser.add_argument(
        "--samples",
        type=arguments.count,
        default=3,
        help="sample images per point; generated with the run's model for the last front and the "
        "baselines when no --eval images exist (0: none)",
    )
    parser.add_argument(
        "--max-generations",
        type=arguments.positive,
        default=60,
        help="generations the page can show (evenly spaced, always the first and last)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..report import build_report

    if args.max_generations < 2:
        raise ValueError("--max-generations must be at least 2 (the first and the last generation).")
    for path in build_report(args.run_dir, args.out, args.eval_dir, args.samples, args.max_generations):
        print(path.absolute())  # where it is, also for the PNGs written beside a report in the current folder
    return 0
