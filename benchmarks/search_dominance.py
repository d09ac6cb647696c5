"""The search's must-show: on tiny-shapes with tiny-reward, does a modest search find schedules that dominate the
FORA heuristics (lower MACs and no lower reward)?

    python benchmarks/search_dominance.py --out runs/dominance [--save]

Runs (or resumes) a search, then compares every front point with FORA N=2 and N=3 as evaluated in the same run
(they are seeds of the initial population, so they are scored on the same prompts and seeds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import emit, environment  # noqa: E402

import ecad  # noqa: E402
from ecad import heuristics  # noqa: E402
from ecad.loading import load_pipeline  # noqa: E402
from ecad.prompts import load_prompts  # noqa: E402
from ecad.search import RunDirectory, SearchConfig, schedule_key, search  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/dominance")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    config = SearchConfig(model="tiny-shapes", prompts=load_prompts("tiny-shapes", limit=args.prompts),
                          metric="tiny-reward", population=args.population, generations=args.generations,
                          batch_size=16, device="cpu")
    run = RunDirectory(args.out)
    result = search(config, args.out, resume=run.config_path.exists(), progress=False)
    layout = ecad.model_layout(load_pipeline("tiny-shapes", device="cpu"))
    store = run.store()
    full_cost = run.read_front()["full_cost"]
    rows = []
    for n in (2, 3):
        fora = store.get(schedule_key(heuristics.fora(layout, config.num_steps, n)))
        dominating = [r for r in result.front if r["cost"] < fora.cost and r["quality"] >= fora.quality]
        rows.append({
            "baseline": f"fora-{n}", "quality": fora.quality, "speedup": full_cost / fora.cost,
            "dominated": bool(dominating),
            "best_dominating": max(dominating, key=lambda r: r["speedup"], default=None),
        })
    store.close()
    emit("search_dominance", {
        "benchmark": "search_dominance", **environment(), "population": args.population,
        "generations": args.generations, "prompts": args.prompts, "evaluations": result.evaluations,
        "baselines": rows,
        "front": [{"speedup": r["speedup"], "quality": r["quality"], "file": r["file"]} for r in result.front],
    }, args.save)


if __name__ == "__main__":
    main()
