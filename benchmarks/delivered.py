"""Delivered vs predicted speedups: measured transformer-only and end-to-end speedups of several schedules against
the speedup their MACs predict, with the Amdahl bound from the measured time outside the transformer.

    python benchmarks/delivered.py --model tiny-shapes [--schedules a.json b.json] [--save]

Schedules: FORA N=2..5, random densities 0.2/0.4/0.6/0.8 (seed 0), and any given files (e.g. the paper's, on a
PixArt-XL-2 model). Target on GPU at saturating batch: transformer-only speedup >= 95% of MAC-predicted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    TransformerTimer, emit, environment, median, settings, setup, time_call,
)

import ecad  # noqa: E402
from ecad import heuristics  # noqa: E402
from ecad.macs import count_macs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", nargs="*", default=[], help="extra schedule files")
    args, pipe, prompts, size, call = setup(parser)
    layout = ecad.model_layout(pipe)
    schedules = {"no-cache": None}
    schedules |= {f"fora-{n}": heuristics.fora(layout, args.steps, n) for n in (2, 3, 4, 5)}
    schedules |= {f"random-{d}": heuristics.random_schedule(layout, args.steps, d) for d in (0.2, 0.4, 0.6, 0.8)}
    schedules |= {Path(f).stem: ecad.CacheSchedule.load(f) for f in args.schedules}
    rows_per_call = len(prompts) * (2 if args.guidance > 1 else 1)
    table = count_macs(pipe.transformer, size, size, batch_size=rows_per_call)
    timer = TransformerTimer(pipe.transformer)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in schedules}
    for repeat in range(args.warmup + args.repeats):
        for name, schedule in schedules.items():  # round-robin: drift hits every schedule alike
            handle = ecad.enable_cache(pipe, schedule) if schedule is not None else None
            total, transformer = time_call(pipe, call, timer)
            if handle is not None:
                handle.disable()
            if repeat >= args.warmup:
                times[name][0].append(total)
                times[name][1].append(transformer)
    timer.remove()
    base_total, base_transformer = median(times["no-cache"][0]), median(times["no-cache"][1])
    outside = base_total - base_transformer
    full = ecad.full_schedule(pipe, args.steps)
    rows = []
    for name, schedule in schedules.items():
        predicted = table.schedule_macs(full) / table.schedule_macs(schedule or full)
        total, transformer = median(times[name][0]), median(times[name][1])
        rows.append({
            "schedule": name, "predicted_speedup": predicted,
            "transformer_speedup": base_transformer / transformer, "end_to_end_speedup": base_total / total,
            "amdahl_bound": base_total / (outside + base_transformer / predicted),
            "transformer_efficiency": (base_transformer / transformer) / predicted,
            "median_s": total, "transformer_median_s": transformer,
        })
    emit("delivered", {
        "benchmark": "delivered", **environment(str(pipe.device)), **settings(args, size),
        "outside_transformer_s": outside, "rows": rows,
    }, args.save)


if __name__ == "__main__":
    main()
