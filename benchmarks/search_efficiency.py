"""Issue 14's must-show: the fast search strategy against the paper's, held-out hypervolume per image-equivalent.

    flock /tmp/ecad-cpu.lock python benchmarks/search_efficiency.py --out runs/efficiency [--save]

On tiny-shapes with tiny-reward at guidance 3, for each seed: the paper strategy and the fast strategy (exact
shared-prefix reuse, ecad.search.prefix) run the same scaled search, each timed (wall clock, in this process,
interleaved). At chosen generations, the archive front of each run (every non-dominated schedule evaluated so far,
what front.json holds) is re-scored on held-out captions the search never saw (every 4th caption of the heldout
split: 124, 1 image each, the same seeds for every schedule), and its held-out hypervolume (objectives -reward and
MAC cost fraction, reference point (0, 1): the area no caching at reward 0 bounds) is put against the
image-equivalents the run had spent by then (one = the MACs of one uncached image; a shared prefix counts once).

Also reported: whether the two strategies' fronts are identical (they must be: the reuse is exact), the
shared-prefix saving on its own (transformer calls replayed, and image-equivalents saved), and how many
image-equivalents the fast strategy needs to reach the paper strategy's final held-out hypervolume.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, emit, environment  # noqa: E402
from pymoo.indicators.hv import HV  # noqa: E402

import ecad  # noqa: E402
from ecad.generation import Calibration, CalibrationGenerator  # noqa: E402
from ecad.hooks import runtime_bits  # noqa: E402
from ecad.loading import load_pipeline  # noqa: E402
from ecad.metrics import get_metric  # noqa: E402
from ecad.prompts import load_prompts  # noqa: E402
from ecad.search import RunDirectory, SearchConfig, schedule_from_key, schedule_key, search  # noqa: E402
from ecad.search.prefix import prefix_plan  # noqa: E402
from ecad.search.run import archive_front  # noqa: E402
from ecad.tiny_shapes import GUIDANCE_SCALE  # noqa: E402
from ecad.tiny_shapes.scenes import all_captions  # noqa: E402

STRATEGIES = ("paper", "fast")


def generations(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "generations").glob("[0-9][0-9][0-9][0-9].json"))]


def fronts(run: Path) -> list[list[tuple[str, float]]]:
    """The archive front (key, cost fraction) after each generation, rebuilt from the generation files as
    run_search builds it (every schedule but no caching reuses something, so all others are feasible)."""
    archive: dict[str, tuple[None, np.ndarray, bool]] = {}
    out = []
    for generation in generations(run):
        for row in generation["population"]:
            archive.setdefault(row["key"], (None, np.array([-row["quality"], row["cost_fraction"]]),
                                            row["cost_fraction"] < 1.0))
        out.append([(k, float(archive[k][1][1])) for k in archive_front(archive)])
    return out


def prefix_saving(run: Path, layout: ecad.ModelLayout) -> dict[str, float]:
    """Transformer calls the fast strategy replays: each generation's new candidates, planned as the run planned
    them."""
    seen: set[str] = set()
    replayed = total = 0
    for generation in generations(run):
        new = list(dict.fromkeys(r["key"] for r in generation["population"] if r["key"] not in seen))
        seen.update(new)
        if not new:
            continue
        schedules = [schedule_from_key(k, layout) for k in new]
        plan = prefix_plan([runtime_bits(s, layout) for s in schedules])
        replayed += sum(p.replay for p in plan)
        total += sum(s.num_steps for s in schedules)
    return {"transformer_calls_replayed": replayed / total if total else 0.0, "candidate_steps": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/efficiency")
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8, help="calibration captions (the tiny-shapes prompt set)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--checkpoints", default="0,2,4,7", help="generations whose fronts are re-scored held out")
    parser.add_argument("--heldout-every", type=int, default=4, help="every Nth heldout caption (4: 124 captions)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    checkpoints = sorted({min(int(c), args.generations - 1) for c in args.checkpoints.split(",")})
    out = Path(args.out)

    runs: dict[tuple[int, str], dict] = {}
    for seed in seeds:
        order = STRATEGIES if seed % 2 == 0 else STRATEGIES[::-1]  # interleaved: neither always runs first
        for strategy in order:
            config = SearchConfig(model="tiny-shapes", prompts=load_prompts("tiny-shapes", limit=args.prompts),
                                  metric="tiny-reward", population=args.population, generations=args.generations,
                                  guidance_scale=GUIDANCE_SCALE, batch_size=16, seed=seed, device="cpu",
                                  strategy=strategy)
            path = out / f"seed{seed}-{strategy}"
            started = time.perf_counter()
            result = search(config, path, resume=RunDirectory(path).config_path.exists(), progress=False)
            runs[seed, strategy] = {"path": path, "wall_s": time.perf_counter() - started,
                                    "evaluations": result.evaluations}

    pipe = load_pipeline("tiny-shapes", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    layout = ecad.model_layout(pipe)
    captions = all_captions("heldout")[:: args.heldout_every]
    generator = CalibrationGenerator(pipe, Calibration(tuple(captions), num_steps=20, guidance_scale=GUIDANCE_SCALE,
                                                       batch_size=31, seed=0))
    metric = get_metric("tiny-reward")
    heldout: dict[str, float] = {}

    def score(key: str) -> float:
        if key not in heldout:
            heldout[key] = float(metric(generator(schedule_from_key(key, layout)))["quality"])
        return heldout[key]

    hv = HV(ref_point=np.array([0.0, 1.0]))
    results = []
    for seed in seeds:
        per_strategy = {}
        for strategy in STRATEGIES:
            run = runs[seed, strategy]
            summaries = [g["summary"] for g in generations(run["path"])]
            curve = []
            for g in checkpoints:
                front = fronts(run["path"])[g]
                points = np.array([[-score(k), cost] for k, cost in front])
                curve.append({"generation": g, "compute_spent": summaries[g]["compute_spent"],
                              "heldout_hv": float(hv(points)), "front_size": len(front)})
            per_strategy[strategy] = {"wall_s": run["wall_s"], "evaluations": run["evaluations"],
                                      "compute_spent": summaries[-1]["compute_spent"], "curve": curve}
        paper, fast = per_strategy["paper"], per_strategy["fast"]
        same = (json.loads((runs[seed, "paper"]["path"] / "front.json").read_text())
                == json.loads((runs[seed, "fast"]["path"] / "front.json").read_text()))
        target = paper["curve"][-1]["heldout_hv"]
        reached = next((p["compute_spent"] for p in fast["curve"] if p["heldout_hv"] >= target), None)
        results.append({
            "seed": seed, "paper": paper, "fast": fast, "identical_fronts": same,
            "prefix_saving": {**prefix_saving(runs[seed, "fast"]["path"], layout),
                              "image_equivalents_saved": 1 - fast["compute_spent"] / paper["compute_spent"]},
            "fast_compute_to_reach_paper_final_hv": reached,
            "fraction_of_paper_compute": reached / paper["compute_spent"] if reached is not None else None,
            "measured_wall_speedup": paper["wall_s"] / fast["wall_s"],
        })
    no_cache = score(schedule_key(layout.full_schedule(20)))
    fractions = [r["fraction_of_paper_compute"] for r in results if r["fraction_of_paper_compute"] is not None]
    record = {
        "benchmark": "search_efficiency", **environment(), "population": args.population,
        "generations": args.generations, "calibration_prompts": args.prompts, "images_per_prompt": 1, "steps": 20,
        "guidance": GUIDANCE_SCALE, "heldout_captions": len(captions), "heldout_no_cache_reward": no_cache,
        "checkpoints": checkpoints, "seeds": results,
        "target_met": bool(fractions) and len(fractions) == len(results) and max(fractions) <= 0.10,
    }
    plot(record, RESULTS / "search_efficiency.png")
    emit("search_efficiency", record, args.save)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for run in record["seeds"]:
        for strategy, style in (("paper", "o-"), ("fast", "s--")):
            curve = run[strategy]["curve"]
            ax.plot([p["compute_spent"] for p in curve], [p["heldout_hv"] for p in curve], style,
                    label=f"{strategy}, seed {run['seed']}")
    ax.set_xlabel("image-equivalents spent (one = one uncached image's MACs)")
    ax.set_ylabel(f"held-out hypervolume ({record['heldout_captions']} captions)")
    ax.set_title("tiny-shapes, tiny-reward: search strategies", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
