"""How well each search cost objective predicts measured transformer time, over many schedules.

    python benchmarks/cost_fidelity.py --model tiny-shapes --batch 8 --guidance 3 \
        [--schedules run/front/*.json] [--save]

Schedules: FORA N=2..7 and 10, every component type every 2nd and 4th step, TGATE, Delta-DiT, random densities
0.1..0.9 (two seeds), and any given files (a search front): at least 30. Both cost models are taken at the
benchmark's own observed pipeline call: ``macs`` (the MAC cost table, what the runtime runs) and ``latency`` (the
latency table measured through the runtime, ecad.latency; measured before every timing round and combined by the
median of each entry, so that it sees the same machine load as the timed schedules on this shared CPU, where load
slows parallel work more than serial work). For each schedule the measured transformer seconds
(median of round-robin repeats) are divided by each objective's prediction: for ``macs``, the measured no-cache
time scaled by the schedule's MAC fraction; for ``latency``, its predicted seconds as they are (absolute) and scaled
the same way (relative to its own no-cache prediction, which cancels drift of the machine between the latency
measurement and the timing). 1.0 is a perfect prediction; the summary gives the spread.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import cost_models, emit, environment, front_schedules, median, settings, setup, time_schedules  # noqa: E402

import ecad  # noqa: E402
from ecad.cost.latency import LatencyTable, measure_latency  # noqa: E402
from ecad.schedule import heuristics  # noqa: E402


def schedules_to_time(layout, steps: int, files: list[str]) -> dict[str, ecad.CacheSchedule | None]:
    schedules: dict[str, ecad.CacheSchedule | None] = {"no-cache": None}
    schedules |= {f"fora-{n}": heuristics.fora(layout, steps, n) for n in (2, 3, 4, 5, 6, 7, 10)}
    schedules |= {
        f"{c}-every-{n}": heuristics.component_interval(layout, steps, c, n)
        for c in layout.component_names
        for n in (2, 4)
    }
    schedules |= {"tgate": heuristics.tgate(layout, steps), "delta-dit": heuristics.delta_dit(layout, steps)}
    schedules |= {
        f"random-{d / 10:.1f}-s{seed}": heuristics.random_schedule(layout, steps, d / 10, seed=seed)
        for d in range(1, 10)
        for seed in (0, 1)
    }
    return schedules | front_schedules(files)


def median_table(tables: list[LatencyTable]) -> LatencyTable:
    """Each entry's median over several measurements of the same latency table."""

    def mid(name: str) -> torch.Tensor:
        return torch.stack([getattr(t, name) for t in tables]).median(dim=0).values

    return dataclasses.replace(
        tables[0],
        component_seconds=mid("component_seconds"),
        replay_seconds=mid("replay_seconds"),
        full_block_seconds=mid("full_block_seconds"),
        outside_seconds=statistics.median(t.outside_seconds for t in tables),
    )


def spread(ratios: list[float]) -> dict[str, float]:
    ordered = sorted(ratios)
    return {
        "median": statistics.median(ordered),
        "mean": statistics.fmean(ordered),
        "std": statistics.pstdev(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "p10": ordered[len(ordered) // 10],
        "p90": ordered[(9 * len(ordered)) // 10],
        "within_10_percent": sum(abs(r - 1) <= 0.1 for r in ordered) / len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", nargs="*", default=[], help="extra schedule files (a search front)")
    args, pipe, prompts, size, call = setup(parser)
    layout = ecad.model_layout(pipe)
    schedules = schedules_to_time(layout, args.steps, args.schedules)
    macs, _ = cost_models(pipe, size, len(prompts), args.guidance, latency=False)
    tables, times = [], {name: ([], []) for name in schedules}
    for repeat in range(args.warmup + args.repeats):
        tables.append(measure_latency(pipe, size, size, images=len(prompts), guidance_scale=args.guidance))
        for name, (totals, transformer) in time_schedules(pipe, call, schedules, 0, 1).items():
            if repeat >= args.warmup:
                times[name][0].extend(totals)
                times[name][1].extend(transformer)
    latency = median_table(tables[args.warmup :])
    full = ecad.full_schedule(pipe, args.steps)
    base = median(times["no-cache"][1])
    full_macs, full_seconds = macs.schedule_macs(full), latency.schedule_seconds(full)
    rows = []
    for name, schedule in schedules.items():
        schedule = schedule or full
        measured = median(times[name][1])
        mac_fraction = macs.schedule_macs(schedule) / full_macs
        predicted_s = latency.schedule_seconds(schedule)
        rows.append(
            {
                "schedule": name,
                "recompute_fraction": schedule.stats()["recompute_fraction"],
                "measured_transformer_s": measured,
                "measured_speedup": base / measured,
                "mac_speedup": 1 / mac_fraction,
                "latency_model_speedup": full_seconds / predicted_s,
                "latency_predicted_s": predicted_s,
                "macs_ratio": measured / (base * mac_fraction),
                "latency_ratio_relative": measured / (base * predicted_s / full_seconds),
                "latency_ratio_absolute": measured / predicted_s,
                "transformer_s": times[name][1],
            }
        )
    cached = [r for r in rows if r["schedule"] != "no-cache"]
    emit(
        "cost_fidelity",
        {
            "benchmark": "cost_fidelity",
            **environment(str(pipe.device)),
            **settings(args, size),
            "schedules": len(cached),
            "macs_counted": macs.counted,
            "transformer_batch": macs.batch_size,
            "summary": {
                "macs": spread([r["macs_ratio"] for r in cached]),
                "latency_relative": spread([r["latency_ratio_relative"] for r in cached]),
                "latency_absolute": spread([r["latency_ratio_absolute"] for r in rows]),
            },
            "latency_table": latency.to_dict(),
            "latency_tables_measured": len(tables) - args.warmup,
            "rows": rows,
        },
        args.save,
    )


if __name__ == "__main__":
    main()
