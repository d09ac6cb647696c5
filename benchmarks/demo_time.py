"""End-to-end time of the main job, `ecad demo`, and of `ecad --help`, each as a fresh process (cold start).

    flock /tmp/ecad-cpu.lock python benchmarks/demo_time.py [--repeats 1] [--save]

Targets (issue #16): `ecad demo` under 60 s and `ecad --help` under 1 s on an idle 2-core machine. Everything a user
waits for counts: interpreter start, imports, loading the model, the search, the report with its sample images.
The demo's own phase times (its last log line) and the machine's load average before and after each run are kept,
so a run on a busy machine shows as one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import emit, environment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
PHASES = re.compile(r"demo done in (\d+) s \(search (\d+) s, report (\d+) s\)")


def timed(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ecad", *args], capture_output=True, text=True, env=ENV)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ecad {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, done


def demo_defaults() -> str:
    """The settings a plain `ecad demo` runs with, read from its own parser."""
    sys.path.insert(0, str(ROOT / "src"))
    from ecad.cli import build_parser

    args = build_parser().parse_args(["demo"])
    return (
        f"population {args.population}, {args.generations} generations, {args.prompts} captions, report with "
        f"{args.samples} samples per point"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="demo runs (each in a new run directory)")
    parser.add_argument("--help-repeats", type=int, default=5, help="`ecad --help` runs")
    parser.add_argument("--save", action="store_true", help="append the JSON result to benchmarks/results/")
    args = parser.parse_args()

    help_runs = [timed(["--help"])[0] for _ in range(args.help_repeats)]
    demos = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            load_before = os.getloadavg()[0]
            seconds, done = timed(["demo", "--out", str(Path(tmp) / "ecad-demo")])
            phases = PHASES.search(done.stderr)
            demos.append(
                {
                    "seconds": seconds,
                    "load_before": load_before,
                    "load_after": os.getloadavg()[0],
                    "search_s": int(phases.group(2)) if phases else None,
                    "report_s": int(phases.group(3)) if phases else None,
                    "suggested": next(
                        (line for line in done.stdout.splitlines() if line.startswith("* suggested:")), None
                    ),
                }
            )
    emit(
        "demo_time",
        {
            "benchmark": "demo_time",
            **environment("cpu"),
            "cpu_count": os.cpu_count(),
            "command": f"ecad demo (defaults: {demo_defaults()})",
            "help_median_s": statistics.median(help_runs),
            "help_s": help_runs,
            "demo_median_s": statistics.median(d["seconds"] for d in demos),
            "demo_runs": demos,
        },
        args.save,
    )


if __name__ == "__main__":
    main()
