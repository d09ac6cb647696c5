"""Issue 14's successive halving with a second rung, estimated from finished race runs before it is built.

    python benchmarks/race_rungs.py RUN_DIR [RUN_DIR ...] [--rungs 8 12 16] [--save]

A race run scores each new candidate on its first rows and completes only those no cheaper front point beats
there. A second rung would score a candidate that passed on more rows (R) and complete it only if it still passes.
The runs' own store holds every completed candidate's score on every row, so the second rung's decision can be
replayed on them, against the same reference fronts the run used (its archive front at the start of each
generation, full-set scores only; the means rule of ``--race-confidence 0.5``). Reported per run and R: how many
completed candidates the second rung would have cut, the image-equivalents that saves (each cut candidate's
compute times the share of its rows after R) as a share of what the run spent, and how many schedules of the
run's final calibration front it would have cut. This follows the run's own trajectory: a real second rung would
also change which candidates enter later fronts, so it is an estimate of the saving and a count of the risk, not a
replacement for a run. No images are generated.

A run's generations are its store's evaluations in the order they were written (a completed candidate is rewritten
within its generation), split by the generation files' ``new_evaluations``; a run whose counts do not add up (a
generation replayed by a resume) is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from common import emit, environment  # noqa: E402

from ecad.search import Evaluation, RunDirectory  # noqa: E402
from ecad.search.racing import on_every_row  # noqa: E402
from ecad.search.records import archive_front  # noqa: E402


def generations(run: Path) -> list[list[Evaluation]] | None:
    """The run's new evaluations of each generation, or None when the store does not split into them."""
    counts = [
        json.loads(p.read_text())["summary"]["new_evaluations"]
        for p in sorted((run / "generations").glob("[0-9][0-9][0-9][0-9].json"))
    ]
    db = sqlite3.connect(f"{(run / 'evaluations.sqlite').absolute().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key, quality, cost, metrics FROM evaluations ORDER BY created").fetchall()
    finally:
        db.close()
    if sum(counts) != len(rows):
        return None
    evaluations = [Evaluation(key, quality, cost, json.loads(metrics)) for key, quality, cost, metrics in rows]
    starts = np.cumsum([0, *counts])
    return [evaluations[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]


def front(evaluations: list[Evaluation]) -> list[Evaluation]:
    """The run's archive front over ``evaluations`` (``archive_front``: full-set scores only, objectives -quality
    and cost)."""
    by_key = {e.key: e for e in evaluations}
    archive = {k: (None, np.array([-e.quality, e.cost]), on_every_row(e)) for k, e in by_key.items()}
    return [by_key[k] for k in archive_front(archive)]


def second_rung(chunks: list[list[Evaluation]], rows: int) -> dict[str, float]:
    spent = sum(e.metrics["compute"] for chunk in chunks for e in chunk)
    final = {e.key for e in front([e for chunk in chunks for e in chunk])}
    cut = saved = lost = 0
    for g in range(1, len(chunks)):
        reference = front([e for chunk in chunks[:g] for e in chunk])
        for e in chunks[g]:
            scores = e.metrics["row_quality"]
            if not on_every_row(e) or len(scores) <= rows:
                continue
            mine = np.asarray(scores[:rows])
            if any(
                p.cost <= e.cost and (mine - np.asarray(p.metrics["row_quality"][:rows])).mean() < 0 for p in reference
            ):
                cut += 1
                saved += e.metrics["compute"] * (len(scores) - rows) / len(scores)
                lost += e.key in final
    return {
        "second_rung_rows": rows,
        "completed_cut": cut,
        "image_eq_saved": saved,
        "share_saved": saved / spent,
        "final_front_cut": lost,
        "final_front_size": len(final),
        "image_eq_spent": spent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--rungs", nargs="+", type=int, default=[8, 12, 16], help="second-rung rows R to replay")
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    results = []
    for run in args.runs:
        config = RunDirectory(run).load_config()
        if config.strategy != "race":
            raise SystemExit(f"{run} is a {config.strategy} run; this replays race runs (--strategy race).")
        chunks = generations(run)
        entry = {"run": run.name, "race_rows": config.race_rows, "race_confidence": config.race_confidence}
        if chunks is None:
            results.append({**entry, "skipped": "its store does not split into its generations (a replayed one)"})
            continue
        results.append({**entry, "rungs": [second_rung(chunks, rows) for rows in args.rungs]})
    emit(
        "race_rungs",
        {
            "benchmark": "race_rungs",
            **environment(),
            "estimate": "replayed on the runs' own trajectories, means rule, reference fronts as the runs had them",
            "runs": results,
        },
        args.save,
    )


if __name__ == "__main__":
    main()
