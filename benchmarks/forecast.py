"""Forecast as a third action: two-action against three-action search fronts on tiny-shapes, re-scored on held-out
captions, with FORA and TaylorSeer baselines in the same table.

    python benchmarks/forecast.py --out runs/forecast [--save]

Two searches with the same budget (population, generations), seed, calibration captions (the ``tiny-shapes`` prompt
set) and tiny-reward metric, at guidance 3 and 20 steps: ``--actions reuse`` (the paper's) and
``--actions reuse,forecast``. Every front schedule, no caching, FORA N and TaylorSeer N (order 1 and 2) are then
re-scored on held-out captions (``--heldout`` of them, from the ``heldout`` split the ``tiny-shapes-heldout`` prompt
set samples; one image each, the same seeds for every schedule): the share judged matching (reward > 0.5) with a
95% Wilson interval and its paired difference to no caching. Each front's held-out hypervolume is that of its
re-scored points (objectives: share matching, and MACs as a fraction of no caching; reference point: 0 matching, full
cost). FORA and TaylorSeer (order 1, along steps) are also run at ``--long-steps`` (50: FLUX-like step counts), where
forecasting methods report their gains. Speedups are MAC speedups (MACs as the runtime runs them, observed call);
forecasting costs no MACs (three element-wise operations per output element, order 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import emit, environment, tiny_search  # noqa: E402
from pymoo.indicators.hv import HV  # noqa: E402
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting  # noqa: E402
from search_dominance import matches, paired_difference, wilson  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import ecad  # noqa: E402
from ecad.models.loading import load_pipeline  # noqa: E402
from ecad.models.macs import count_macs  # noqa: E402
from ecad.models.tiny_shapes import GUIDANCE_SCALE, IMAGE_SIZE, load_reward_model  # noqa: E402
from ecad.models.tiny_shapes.scenes import all_captions  # noqa: E402
from ecad.schedule import heuristics  # noqa: E402

ACTION_SETS = {"two-action": "reuse", "three-action": "reuse,forecast"}


def baselines(layout, steps: int, variants: bool = True) -> dict[str, ecad.CacheSchedule | ecad.CacheConfig]:
    """No caching, FORA N, TaylorSeer N; with ``variants`` also TaylorSeer along timesteps and of order 2."""
    schedules: dict[str, ecad.CacheSchedule | ecad.CacheConfig] = {"no-cache": heuristics.no_cache(layout, steps)}
    for n in (2, 3, 4):
        schedules[f"fora-{n}"] = heuristics.fora(layout, steps, n)
        schedules[f"taylorseer-{n}"] = heuristics.taylorseer(layout, steps, n)
        if variants:
            schedules[f"taylorseer-{n}-timestep"] = ecad.CacheConfig(
                heuristics.taylorseer(layout, steps, n), forecast_unit="timestep"
            )
            schedules[f"taylorseer-{n}-order2"] = heuristics.taylorseer(layout, steps, n, 2)
    return schedules


def hypervolume(points: list[tuple[float, float]]) -> float:
    """Of (share matching, cost fraction) points: both turned into minimised objectives, reference (0, 1)."""
    F = np.array([[-quality, cost] for quality, cost in points])
    front = F[NonDominatedSorting().do(F, only_non_dominated_front=True)]
    return float(HV(ref_point=np.array([0.0, 1.0 + 1e-9]))(front))


def rescore(pipe, judge, table, captions, schedules, steps, guidance, reference) -> list[dict]:
    full = table.full_step_macs * steps
    rows = []
    for name, plan in tqdm(schedules.items(), desc=f"held-out re-score, {steps} steps"):
        matched = matches(pipe, judge, captions, plan, steps, guidance)  # enable_cache takes either
        schedule = plan.schedule if isinstance(plan, ecad.CacheConfig) else plan
        hits = int(matched.sum())
        macs = table.schedule_macs(schedule)
        unit = plan.forecast_unit if isinstance(plan, ecad.CacheConfig) else "step"
        rows.append(
            {
                "schedule": name,
                "forecast_unit": unit,
                "mac_speedup": full / macs,
                "cost_fraction": macs / full,
                "recompute_fraction": schedule.stats()["recompute_fraction"],
                "forecast_fraction": schedule.stats()["forecast_fraction"],
                "heldout_matching": hits / len(captions),
                "heldout_ci95": list(wilson(hits, len(captions))),
                "heldout_vs_no_cache": paired_difference(matched, reference),
                "_matched": matched,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/forecast")
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=8, help="calibration captions (the tiny-shapes prompt set)")
    parser.add_argument("--images-per-prompt", type=int, default=1)
    parser.add_argument("--heldout", type=int, default=124, help="held-out captions to re-score on")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--long-steps", type=int, default=50, help="baselines also at this step count (0: skip)")
    parser.add_argument("--guidance", type=float, default=GUIDANCE_SCALE, help="default: tiny-shapes' best (3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    fronts = {}
    for label, actions in ACTION_SETS.items():
        out = Path(args.out) / label
        _, result = tiny_search(
            out,
            args.prompts,
            population=args.population,
            generations=args.generations,
            num_steps=args.steps,
            guidance_scale=args.guidance,
            seed=args.seed,
            actions=actions,
            images_per_prompt=args.images_per_prompt,
            strategy="paper",
        )  # as measured
        fronts[label] = (
            {f"{label}/{Path(row['file']).stem}": ecad.CacheSchedule.load(out / row["file"]) for row in result.front},
            result,
        )

    pipe = load_pipeline("tiny-shapes", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    layout = ecad.model_layout(pipe)
    judge = load_reward_model()
    captions = all_captions("heldout")[::2][: args.heldout]
    table = count_macs(pipe, IMAGE_SIZE, IMAGE_SIZE, guidance_scale=args.guidance, images=1)  # per step
    reference = matches(pipe, judge, captions, None, args.steps, args.guidance)
    candidates = {
        **baselines(layout, args.steps),
        **{k: v for label in ACTION_SETS for k, v in fronts[label][0].items()},
    }
    rows = rescore(pipe, judge, table, captions, candidates, args.steps, args.guidance, reference)
    summary = {}
    for label in ACTION_SETS:
        mine = [r for r in rows if r["schedule"].startswith(label + "/")]
        summary[label] = {
            "front_size": len(mine),
            "evaluations": fronts[label][1].evaluations,
            "calibration_hypervolume": fronts[label][1].hypervolumes[-1],
            "heldout_hypervolume": hypervolume([(r["heldout_matching"], r["cost_fraction"]) for r in mine]),
            "best_at_4x": max((r["heldout_matching"] for r in mine if r["mac_speedup"] >= 4.0), default=None),
            "forecasting_schedules": sum(1 for r in mine if r["forecast_fraction"] > 0),
        }
    long_rows = []
    if args.long_steps:
        long_reference = matches(pipe, judge, captions, None, args.long_steps, args.guidance)
        long_rows = rescore(
            pipe,
            judge,
            table,
            captions,
            baselines(layout, args.long_steps, variants=False),
            args.long_steps,
            args.guidance,
            long_reference,
        )
    for row in rows + long_rows:
        row.pop("_matched")
    three = summary["three-action"]
    emit(
        "forecast",
        {
            "benchmark": "forecast",
            **environment(),
            "model": "tiny-shapes",
            "metric": "tiny-reward",
            "guidance": args.guidance,
            "steps": args.steps,
            "population": args.population,
            "generations": args.generations,
            "calibration_prompts": args.prompts,
            "seed": args.seed,
            "images_per_prompt": args.images_per_prompt,
            "heldout_captions": len(captions),
            "speedups": "MAC speedup",
            "summary": summary,
            "rows": rows,
            "long_steps": args.long_steps,
            "long_rows": long_rows,
            "target_hypervolume_met": three["heldout_hypervolume"] > summary["two-action"]["heldout_hypervolume"],
            "target_4x_75_met": bool(three["best_at_4x"] is not None and three["best_at_4x"] >= 0.75),
        },
        args.save,
    )


if __name__ == "__main__":
    main()
