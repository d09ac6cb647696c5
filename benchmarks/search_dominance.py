"""The search's must-show: on tiny-shapes with tiny-reward, does a modest search find schedules that dominate the
FORA heuristics (lower MACs and no lower reward)?

    python benchmarks/search_dominance.py --out runs/dominance [--save]

Runs (or resumes) a search, then compares every front point with FORA N=2 and N=3 as evaluated in the same run
(they are seeds of the initial population, so they are scored on the same prompts and seeds). The search sees
only training captions; the baselines and the best dominating schedules are then re-scored on held-out captions
(every other one of the 496, 1 image each) so the claim does not rest on the calibration set alone.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import emit, environment  # noqa: E402

import ecad  # noqa: E402
from ecad import heuristics  # noqa: E402
from ecad.loading import load_pipeline  # noqa: E402
from ecad.prompts import load_prompts  # noqa: E402
from ecad.search import RunDirectory, SearchConfig, schedule_key, search  # noqa: E402
from ecad.tiny_shapes import GUIDANCE_SCALE, PIPELINE_KWARGS, load_reward_model  # noqa: E402
from ecad.tiny_shapes.scenes import all_captions  # noqa: E402


def heldout_accuracy(pipe, judge, captions: list[str], schedule: ecad.CacheSchedule | None, steps: int,
                     guidance: float, batch: int = 31) -> float:
    """Share of ``captions`` whose image (under ``schedule``; None: no caching) the reward model judges as matching."""
    with ecad.enable_cache(pipe, schedule) if schedule is not None else nullcontext():
        images = [pipe(captions[start : start + batch], num_inference_steps=steps, guidance_scale=guidance,
                       generator=torch.Generator().manual_seed(b), output_type="pt", **PIPELINE_KWARGS).images
                  for b, start in enumerate(range(0, len(captions), batch))]
    return float((judge.score(torch.cat(images), captions) > 0.5).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/dominance")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--guidance", type=float, default=GUIDANCE_SCALE, help="default: tiny-shapes' best (3)")
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    config = SearchConfig(model="tiny-shapes", prompts=load_prompts("tiny-shapes", limit=args.prompts),
                          metric="tiny-reward", population=args.population, generations=args.generations,
                          guidance_scale=args.guidance, batch_size=16, device="cpu")
    run = RunDirectory(args.out)
    result = search(config, args.out, resume=run.config_path.exists(), progress=False)
    pipe = load_pipeline("tiny-shapes", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    layout = ecad.model_layout(pipe)
    heldout = partial(heldout_accuracy, pipe, load_reward_model(), all_captions("heldout")[::2],
                      steps=config.num_steps, guidance=args.guidance)  # every other held-out caption, 1 image each
    store = run.store()
    full_cost = run.read_front()["full_cost"]
    rows = []
    for n in (2, 3):
        schedule = heuristics.fora(layout, config.num_steps, n)
        fora = store.get(schedule_key(schedule))
        dominating = [r for r in result.front if r["cost"] < fora.cost and r["quality"] >= fora.quality]
        best = max(dominating, key=lambda r: r["speedup"], default=None)
        if best is not None:
            best["heldout_accuracy"] = heldout(ecad.CacheSchedule.load(run.path / best["file"]))
        rows.append({
            "baseline": f"fora-{n}", "quality": fora.quality, "speedup": full_cost / fora.cost,
            "heldout_accuracy": heldout(schedule),
            "dominated": bool(dominating), "best_dominating": best,
        })
    store.close()
    emit("search_dominance", {
        "benchmark": "search_dominance", **environment(), "population": args.population,
        "generations": args.generations, "prompts": args.prompts, "guidance": args.guidance, "evaluations": result.evaluations,
        "no_cache_heldout_accuracy": heldout(None), "baselines": rows,
        "front": [{"speedup": r["speedup"], "quality": r["quality"], "file": r["file"]} for r in result.front],
    }, args.save)


if __name__ == "__main__":
    main()
