"""Candidate throughput of `ecad search` with the Ray executor and 1 vs 2 CPU workers (same run settings).

    python benchmarks/ray_throughput.py --model tiny-shapes [--save]

Each configuration evaluates the same generation-0 population (the heuristics) from an empty run directory; the
throughput is candidates per second over the evaluation phase (model loading excluded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import emit, environment  # noqa: E402

from ecad.models.prompts import load_prompts  # noqa: E402
from ecad.schedule.heuristics import initial_population  # noqa: E402
from ecad.search import SearchConfig, make_executor  # noqa: E402


def throughput(config: SearchConfig, executor: str, **options) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runner = make_executor(executor, config, Path(tmp), **options)
        try:
            layout, _ = runner.describe()
            schedules = initial_population(layout, config.num_steps, config.population)
            start = time.perf_counter()
            done = sum(1 for _ in runner.map(schedules))
            seconds = time.perf_counter() - start
        finally:
            runner.close()
    return {"candidates": done, "seconds": seconds, "per_second": done / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-shapes")
    parser.add_argument("--prompts", default="tiny-shapes")
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    import ray

    config = SearchConfig(
        model=args.model,
        prompts=load_prompts(args.prompts),
        population=args.population,
        num_steps=args.steps,
        device="cpu",
        strategy="paper",
    )  # each candidate on its own
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    one = throughput(config, "ray", workers=1)
    two = throughput(config, "ray", workers=2)
    ray.shutdown()
    emit(
        "ray_throughput",
        {
            "benchmark": "ray_throughput",
            **environment(),
            "model": args.model,
            "population": args.population,
            "steps": args.steps,
            "workers_1": one,
            "workers_2": two,
            "ratio_2_over_1": two["per_second"] / one["per_second"],
        },
        args.save,
    )


if __name__ == "__main__":
    main()
