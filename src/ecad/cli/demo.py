"""``ecad demo``: the whole job on the embedded tiny-shapes model, in minutes on a laptop CPU.

A small NSGA-II search (tiny-reward quality against MACs) seeded with the usual heuristics, then the run's front,
its plot and an HTML report. Running it again continues the same run (``--generations`` can grow).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..prompts import load_prompts
from ..report.html import build_report
from ..search import RunDirectory, SearchConfig, search
from ..tiny_shapes import GUIDANCE_SCALE
from ..validation import whole
from . import arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="search cache schedules for the embedded tiny-shapes model (minutes, CPU)")
    parser.add_argument("--out", default="ecad-demo", help="run directory (default: ./ecad-demo)")
    parser.add_argument("--population", type=arguments.typed(whole(2)), default=10)
    parser.add_argument("--generations", type=arguments.positive, default=5)
    parser.add_argument("--prompts", type=arguments.typed(whole(1, 16)), default=8,
                        help="calibration captions (default 8)")
    parser.add_argument("--device", type=arguments.device, default="auto")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = SearchConfig(
        model="tiny-shapes", prompts=load_prompts("tiny-shapes", limit=args.prompts), metric="tiny-reward",
        population=args.population, generations=args.generations, batch_size=16, device=args.device,
        guidance_scale=GUIDANCE_SCALE,
    )
    resume = RunDirectory(args.out).config_path.exists()
    result = search(config, args.out, resume=resume)
    out = Path(args.out)
    print(f"\n{len(result.front)} schedules on the front ({result.evaluations} evaluated; MAC speedup: predicted by "
          "the cost model, `ecad eval` measures time):")
    print(f"{'MAC speedup':>11} {'tiny-reward':>12}  file")
    for row in result.front:
        print(f"{row['speedup']:>10.2f}x {row['quality']:>12.3f}  {out / row['file']}")
    report = build_report(out, out / "report.html", samples=2)
    print(f"\nfront plot: {out / 'front.png'}\nreport:     {report[0]}\n"
          f"use one:    ecad generate --model tiny-shapes --guidance {GUIDANCE_SCALE:g} "
          f"--schedule {out / 'front' / '000.json'} "
          f"--prompt \"a small red circle above a large blue square\" --out image.png")
    return 0
