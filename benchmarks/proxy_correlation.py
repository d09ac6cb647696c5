"""Cheap proxies for the search's metric: does latent error against the uncached trajectory rank schedules as the
metric on every calibration row does?

    python benchmarks/proxy_correlation.py [--prompts 16 --images-per-prompt 2] [--save]

Issue #14 asks whether a proxy (no decoding, no reward model) can reject candidates early, and to use one only where
its rank correlation with the metric is measured. Every schedule of a search's initial population (the paper's
seeds and random densities) and of the committed search fronts (``benchmarks/results/fronts``) is generated once on
the search's calibration rows (tiny-shapes, the first ``--prompts`` captions x ``--images-per-prompt``, the
search's seeds), keeping the latents after every denoising step. Per schedule:

- ``metric``: tiny-reward quality (the search's objective) on all rows, and on the rows left after the first k;
- ``metric@k``: the same metric on the first k rows only (what a race's first stage sees);
- ``latent@k,s``: the mean relative latent error ``|x_s - x_s^ref| / |x_s^ref|`` on the first k rows after step s
  (s = the last step: the final latents; an earlier s costs only the first s+1 steps).

Spearman correlations (negated for errors, so higher = ranks alike), and partial Spearman given the MAC cost (rank
residuals after the cost's ranks): a search compares candidates at similar cost, where a proxy that only follows
the density is no use.

Then the decisions a race's first stage would make with each (``race_replay``): every schedule in turn is the
candidate, the Pareto front of the others (MAC cost, metric on every row) the reference, and the candidate is
rejected when a front point no more expensive is better on its first k rows (the means rule of ``--race-confidence
0.5``: higher metric, or lower latent error). Counted: rejected, wrongly rejected (the candidate is not dominated
by that front on every row: it would have entered it), and the compute per candidate relative to scoring every row
(``k/rows + (1 - k/rows) * share not rejected``). The reference front here is of seeds and random schedules plus
two finished searches' fronts, not a running search's, so this ranks the rules; it does not predict a run's saving.
"""

from __future__ import annotations

import argparse
import math
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, calibration_captions, emit, environment, front_schedules  # noqa: E402
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting  # noqa: E402
from scipy.stats import rankdata, spearmanr  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import ecad  # noqa: E402
from ecad.generation import Calibration, CalibrationGenerator  # noqa: E402
from ecad.metrics import get_metric  # noqa: E402
from ecad.models.loading import load_pipeline  # noqa: E402
from ecad.models.tiny_shapes import GUIDANCE_SCALE  # noqa: E402
from ecad.schedule import heuristics  # noqa: E402


@contextmanager
def trajectory(pipe):
    """Collects the latents every ``scheduler.step`` returns (every denoising step of every call), on the CPU."""
    steps: list[torch.Tensor] = []
    original = pipe.scheduler.step

    def step(*args, **kwargs):
        out = original(*args, **kwargs)
        steps.append((out.prev_sample if hasattr(out, "prev_sample") else out[0]).float().cpu())
        return out

    pipe.scheduler.step = step
    try:
        yield steps
    finally:
        del pipe.scheduler.step  # the class's own method again


def generate(generator: CalibrationGenerator, schedule, num_steps: int):
    """The schedule's calibration images and latents after each step, ``[steps, rows, ...]``."""
    with trajectory(generator.pipe) as steps:
        generated = generator(schedule)
    batches = math.ceil(len(generator.prompts) / generator.calibration.batch_size)
    if len(steps) != batches * num_steps:
        raise RuntimeError(f"expected {batches * num_steps} scheduler steps, saw {len(steps)}")
    latents = torch.stack([torch.cat(steps[s::num_steps]) for s in range(num_steps)])
    if not torch.equal(latents[-1], generated.latents):
        raise RuntimeError("the last collected step differs from the generated latents")
    return generated, latents


def relative_error(latents: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``[steps, rows]`` relative L2 error of each row's latent after each step."""
    return (latents - reference).flatten(2).norm(dim=2) / reference.flatten(2).norm(dim=2)


def partial_spearman(x: np.ndarray, y: np.ndarray, given: np.ndarray) -> float:
    """Spearman correlation of x and y after removing what the ranks of ``given`` explain linearly from each."""
    rx, ry, rg = rankdata(x), rankdata(y), rankdata(given)
    design = np.stack([np.ones_like(rg), rg], axis=1)
    residual = [r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in (rx, ry)]
    return float(np.corrcoef(*residual)[0, 1])


def interval(rho: float, n: int) -> list[float]:
    """A 95% interval for a Spearman correlation (Fisher z, standard error 1.03 / sqrt(n - 3))."""
    z, half = math.atanh(max(min(rho, 0.999999), -0.999999)), 1.96 * 1.03 / math.sqrt(n - 3)
    return [math.tanh(z - half), math.tanh(z + half)]


def race_replay(cost: np.ndarray, full: np.ndarray, first: np.ndarray, rows: int, k: int) -> dict[str, float]:
    """Leave-one-out first-stage decisions (``first``: the statistic on the first k rows, higher = better)."""
    n = len(cost)
    rejected = wrong = entering = 0
    for c in range(n):
        others = np.array([i for i in range(n) if i != c])
        front = others[
            NonDominatedSorting().do(np.stack([cost[others], -full[others]], axis=1), only_non_dominated_front=True)
        ]
        cheaper = [f for f in front if cost[f] <= cost[c]]
        enters = not any(full[f] >= full[c] for f in cheaper)
        beaten = any(first[f] > first[c] for f in cheaper)
        rejected += beaten
        wrong += beaten and enters
        entering += enters
    return {
        "first_rows": k,
        "rejected": rejected,
        "wrongly_rejected": wrong,
        "entering": entering,
        "candidates": n,
        "compute_per_candidate": k / rows + (1 - k / rows) * (n - rejected) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16, help="calibration captions (as benchmarks' tiny_search)")
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--population", type=int, default=72, help="initial-population schedules (seed 0)")
    parser.add_argument(
        "--fronts", nargs="*", default=sorted(str(p) for p in (RESULTS / "fronts").glob("*/[0-9]*.json"))
    )
    parser.add_argument("--rows", type=int, nargs="*", default=[2, 4, 8], help="first-stage row counts k")
    parser.add_argument("--at-steps", type=int, nargs="*", default=[4, 9, 14], help="early steps s (0-based)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=GUIDANCE_SCALE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    captions = calibration_captions(args.prompts)
    pipe = load_pipeline("tiny-shapes", device="cpu")
    generator = CalibrationGenerator(
        pipe,
        Calibration(
            tuple(captions),
            images_per_prompt=args.images_per_prompt,
            num_steps=args.steps,
            guidance_scale=args.guidance,
            batch_size=16,
        ),
    )
    table = generator.cost_table()
    metric = get_metric("tiny-reward", device="cpu")
    layout = ecad.model_layout(pipe)
    schedules = {
        s.metadata.get("name", f"initial-{i}"): s
        for i, s in enumerate(heuristics.initial_population(layout, args.steps, args.population)[1:])
    }  # [0] is no caching
    schedules |= front_schedules(args.fronts)
    full = ecad.full_schedule(pipe, args.steps)

    _, reference = generate(generator, None, args.steps)
    rows: dict[str, dict] = {}
    for name, schedule in tqdm(schedules.items(), desc="schedules"):
        generated, latents = generate(generator, schedule, args.steps)
        rows[name] = {
            "cost": table.schedule_macs(schedule) / table.schedule_macs(full),
            "quality": metric.rows(generated)["quality"].numpy(),
            "error": relative_error(latents, reference).numpy(),
        }
    generator.close()

    names = list(rows)
    cost = np.array([rows[n]["cost"] for n in names])
    quality = np.stack([rows[n]["quality"] for n in names])  # [schedules, rows]
    error = np.stack([rows[n]["error"] for n in names])  # [schedules, steps, rows]
    target = quality.mean(axis=1)

    def correlate(estimate: np.ndarray, against: np.ndarray) -> dict[str, float | list[float]]:
        rho = float(spearmanr(estimate, against).statistic)
        partial = partial_spearman(estimate, against, cost)
        return {
            "spearman": rho,
            "spearman_ci95": interval(rho, len(names)),
            "partial_spearman_given_cost": partial,
            "partial_ci95": interval(partial, len(names) - 1),
        }

    results = {"cost": {"spearman": float(spearmanr(cost, target).statistic)}}
    replay = {}
    for k in args.rows:
        rest, first = quality[:, k:].mean(axis=1), quality[:, :k].mean(axis=1)
        results[f"metric@{k}"] = {"vs_all_rows": correlate(first, target), "vs_other_rows": correlate(first, rest)}
        replay[f"metric@{k}"] = race_replay(cost, target, first, quality.shape[1], k)
        for s in [*args.at_steps, args.steps - 1]:
            proxy = -error[:, s, :k].mean(axis=1)
            results[f"latent@{k},{s}"] = {
                "vs_all_rows": correlate(proxy, target),
                "vs_other_rows": correlate(proxy, rest),
            }
        replay[f"latent@{k},{args.steps - 1}"] = race_replay(cost, target, proxy, quality.shape[1], k)
    all_rows = -error[:, -1, :].mean(axis=1)
    results[f"latent@{quality.shape[1]},{args.steps - 1}"] = {"vs_all_rows": correlate(all_rows, target)}
    emit(
        "proxy_correlation",
        {
            "benchmark": "proxy_correlation",
            **environment("cpu"),
            "model": "tiny-shapes",
            "metric": "tiny-reward",
            "calibration_prompts": len(captions),
            "images_per_prompt": args.images_per_prompt,
            "steps": args.steps,
            "guidance": args.guidance,
            "schedules": len(names),
            "cost_range": [float(cost.min()), float(cost.max())],
            "correlations": results,
            "race_replay": replay,
            "per_schedule": {
                n: {
                    "cost": rows[n]["cost"],
                    "quality": float(rows[n]["quality"].mean()),
                    "final_latent_error": float(rows[n]["error"][-1].mean()),
                }
                for n in names
            },
        },
        args.save,
    )


if __name__ == "__main__":
    main()
