"""How much longer the search's first candidate takes than the next ones, with and without the warm-up call.

    flock /tmp/ecad-cpu.lock python benchmarks/first_candidate.py [--candidates 5] [--save]

A fresh process per mode (one-time start-up costs are what is measured): tiny-shapes, the demo's calibration set
(8 captions, batch 16, guidance 3, 20 steps), FORA-N candidates. ``first_over_rest`` is the first candidate's time
over the median of the others; the search's ETA is skewed when it is far above 1. With the warm-up (what
``build_evaluator`` does) the warm-up call's own time is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]


def measure(warm_up: bool, candidates: int) -> dict:
    """In this (fresh) process: seconds of the warm-up call and of each candidate's calibration generation."""
    import torch

    from ecad.adapters.layout import model_layout
    from ecad.generation import Calibration, CalibrationGenerator
    from ecad.models.loading import load_pipeline
    from ecad.models.prompts import load_prompts
    from ecad.models.tiny_shapes import GUIDANCE_SCALE
    from ecad.schedule.heuristics import fora

    torch.set_num_threads(2)
    pipe = load_pipeline("tiny-shapes", device="cpu")
    calibration = Calibration(tuple(load_prompts("tiny-shapes", limit=8)), guidance_scale=GUIDANCE_SCALE, batch_size=16)
    generator = CalibrationGenerator(pipe, calibration)
    start = time.perf_counter()
    if warm_up:
        generator.warm_up()
    warm_up_s = time.perf_counter() - start
    layout, seconds = model_layout(pipe), []
    for n in range(candidates):
        start = time.perf_counter()
        generator(fora(layout, 20, 2 + n % 3))
        seconds.append(time.perf_counter() - start)
    return {
        "warm_up": warm_up,
        "warm_up_s": warm_up_s if warm_up else None,
        "candidate_s": seconds,
        "first_over_rest": seconds[0] / statistics.median(seconds[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--save", action="store_true", help="append the JSON result to benchmarks/results/")
    parser.add_argument("--child", choices=["cold", "warm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child == "warm", args.candidates)))
        return
    from common import emit, environment

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    modes = []
    for mode in ("cold", "warm"):
        done = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--candidates", str(args.candidates)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        modes.append(json.loads(done.stdout.strip().splitlines()[-1]))
    emit(
        "first_candidate",
        {
            "benchmark": "first_candidate",
            **environment("cpu"),
            "model": "tiny-shapes",
            "prompts": 8,
            "batch": 16,
            "steps": 20,
            "guidance": 3.0,
            "load_average": os.getloadavg()[0],
            "without_warm_up": modes[0],
            "with_warm_up": modes[1],
        },
        args.save,
    )


if __name__ == "__main__":
    main()
