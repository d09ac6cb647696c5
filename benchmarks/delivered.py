"""Delivered vs predicted speedups: measured transformer-only and end-to-end speedups of several schedules against
the MAC speedup the cost model predicts (counted at the pipeline's observed call, as the runtime runs it), with the
Amdahl bound from the measured time outside the transformer.

    python benchmarks/delivered.py --model tiny-shapes --batch 8 --guidance 3 [--schedules run/front/*.json] [--save]

Schedules: FORA N=2..5, random densities 0.2/0.4/0.6/0.8 (seed 0), and any given files (a search front, the paper's
on a PixArt-XL-2 model). Targets: transformer-only >= 92% of the MAC-predicted speedup on the CPU tiny-shapes, >= 95%
on GPU at saturating batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import cost_models, emit, environment, front_schedules, median, settings, setup, time_schedules  # noqa: E402

import ecad  # noqa: E402
from ecad.schedule import heuristics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", nargs="*", default=[], help="extra schedule files")
    args, pipe, prompts, size, call = setup(parser)
    layout = ecad.model_layout(pipe)
    schedules = {"no-cache": None}
    schedules |= {f"fora-{n}": heuristics.fora(layout, args.steps, n) for n in (2, 3, 4, 5)}
    schedules |= {f"random-{d}": heuristics.random_schedule(layout, args.steps, d) for d in (0.2, 0.4, 0.6, 0.8)}
    schedules |= front_schedules(args.schedules)
    table, _ = cost_models(pipe, size, len(prompts), args.guidance, latency=False)
    times = time_schedules(pipe, call, schedules, args.warmup, args.repeats)
    base_total, base_transformer = median(times["no-cache"][0]), median(times["no-cache"][1])
    outside = base_total - base_transformer
    full = ecad.full_schedule(pipe, args.steps)
    rows = []
    for name, schedule in schedules.items():
        predicted = table.schedule_macs(full) / table.schedule_macs(schedule or full)
        total, transformer = median(times[name][0]), median(times[name][1])
        rows.append(
            {
                "schedule": name,
                "mac_speedup": predicted,
                "measured_transformer_speedup": base_transformer / transformer,
                "measured_end_to_end_speedup": base_total / total,
                "amdahl_bound": base_total / (outside + base_transformer / predicted),
                "transformer_efficiency": (base_transformer / transformer) / predicted,
                "median_s": total,
                "transformer_median_s": transformer,
                "transformer_s": times[name][1],
                "end_to_end_s": times[name][0],
            }
        )
    emit(
        "delivered",
        {
            "benchmark": "delivered",
            **environment(str(pipe.device)),
            **settings(args, size),
            "macs_counted": table.counted,
            "transformer_batch": table.batch_size,
            "text_len": table.text_len,
            "outside_transformer_s": outside,
            "rows": rows,
        },
        args.save,
    )


if __name__ == "__main__":
    main()
