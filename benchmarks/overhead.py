"""Runtime overhead of ecad: an all-recompute schedule against the plain pipeline, same process, interleaved.

    python benchmarks/overhead.py --model tiny-shapes [--save]

Target: <= 3% on the CPU tiny model, <= 1% on GPU at the paper's settings (PixArt 256 px, batch 100).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import emit, environment, median, settings, setup, time_call  # noqa: E402

import ecad  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args, pipe, prompts, size, call = setup(parser)
    schedule = ecad.full_schedule(pipe, args.steps)
    plain, cached = [], []
    for repeat in range(args.warmup + args.repeats):
        order = ("plain", "cached") if repeat % 2 == 0 else ("cached", "plain")
        for mode in order:
            if mode == "cached":
                with ecad.enable_cache(pipe, schedule):
                    seconds, _ = time_call(pipe, call)
            else:
                seconds, _ = time_call(pipe, call)
            if repeat >= args.warmup:
                (cached if mode == "cached" else plain).append(seconds)
    pairs = [c / p for c, p in zip(cached, plain, strict=True)]
    emit(
        "overhead",
        {
            "benchmark": "overhead",
            **environment(str(pipe.device)),
            **settings(args, size),
            "plain_median_s": median(plain),
            "cached_median_s": median(cached),
            "overhead_ratio": median(cached) / median(plain),
            "pairwise_ratio_median": median(pairs),
            "plain_s": plain,
            "cached_s": cached,
        },
        args.save,
    )


if __name__ == "__main__":
    main()
