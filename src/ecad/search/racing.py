"""Multi-fidelity racing (``--strategy race``): score a new candidate on its first calibration rows, and spend the
rest only on a candidate that can still enter the front.

Cost is exact (the cost model), so only quality is raced. A candidate is compared with every point of the archive
front that costs at most what it costs, row by row on the same prompts and seeds: ``d_i = q_candidate,i -
q_point,i`` over the first rows. If the one-sided upper confidence bound of the mean of ``d`` (Student t,
``CONFIDENCE``) is below 0 for one such point, that point is better and no more expensive: the candidate is
rejected. It is stored with its partial mean as quality (NSGA-II sees it) and ``race: "rejected"``, and is never on
a front; every other candidate is scored on the remaining rows, and its full-set scores are what the front holds.

Decisions use the archive front as it was at the start of the generation, not the order candidates finish, and
each is stored with the candidate's first-stage scores: a resumed run makes the same decisions. The reference is a
front scored on every row, so no candidate of the first generation is rejected.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import numpy as np
import torch
from scipy.stats import t as student_t

from .store import Evaluation

# The first quarter of the calibration rows (at least 2, for a variance): measured in
# benchmarks/search_efficiency.py, which also reports the decisions other fractions would have made.
FIRST_ROWS = 0.25
CONFIDENCE = 0.95  # one-sided, per front point compared with
PENDING, REJECTED = "pending", "rejected"  # an evaluation's "race" marker: first rows scored, rest to come / never
# What a raced evaluation records besides its scores: per-row quality, rows its scores are the mean of, marker.
RACE_FIELDS = ("row_quality", "rows_scored", "race")


def first_rows(rows: int, fraction: float = FIRST_ROWS) -> int:
    """How many of ``rows`` calibration rows a candidate is scored on first."""
    return min(rows, max(2, math.ceil(rows * fraction)))


def on_every_row(evaluation: Evaluation) -> bool:
    """Whether ``evaluation`` is a score on the full calibration set (the only kind a front may hold)."""
    return evaluation.metrics.get("race") not in (PENDING, REJECTED)


class QualityRace:
    """The two stages' rows, and the paired decision against a reference front."""

    def __init__(self, rows: int, first: int | None = None, confidence: float = CONFIDENCE) -> None:
        first = first_rows(rows) if first is None else first
        if not 2 <= first <= rows:
            raise ValueError(f"racing needs at least 2 first rows of the {rows} calibration rows, got {first}.")
        self.rows = rows
        self.first, self.rest = range(first), range(first, rows)
        self.critical = float(student_t.ppf(confidence, first - 1))
        self.front: list[tuple[float, np.ndarray]] = []  # (cost, per-row quality on the first rows)

    def set_front(self, front: Iterable[Evaluation]) -> None:
        """The reference for the next generation's decisions: front points scored on every row."""
        self.front = [(e.cost, np.asarray(e.metrics["row_quality"][: len(self.first)], dtype=float)) for e in front]

    def upper_bounds(self, evaluation: Evaluation) -> list[float]:
        """The upper confidence bound of the mean paired difference to each front point costing at most as much."""
        scores = np.asarray(evaluation.metrics["row_quality"], dtype=float)
        bounds = []
        for cost, reference in self.front:
            if cost <= evaluation.cost:
                d = scores - reference
                bounds.append(float(d.mean() + self.critical * d.std(ddof=1) / math.sqrt(len(d))))
        return bounds

    def decide(self, evaluation: Evaluation) -> Evaluation:
        """A first-stage evaluation, marked ``rejected`` or ``pending`` (or as it is, when it already has every
        row: no rows are left to race for)."""
        if not self.rest:
            return evaluation
        rejected = any(bound < 0 for bound in self.upper_bounds(evaluation))
        return dataclasses.replace(evaluation, metrics={**evaluation.metrics, "race": REJECTED if rejected else PENDING})

    def complete(self, first: Evaluation, rest: Evaluation) -> Evaluation:
        """One evaluation on every row from the two stages': quality is the mean of the per-row qualities (as the
        metric takes it, in float32), every other score the row-weighted mean, compute the sum."""
        rows = [*first.metrics["row_quality"], *rest.metrics["row_quality"]]
        quality = torch.tensor(rows, dtype=torch.float32).mean().item()
        n, m = first.metrics["rows_scored"], rest.metrics["rows_scored"]
        metrics = {}
        for name, value in first.metrics.items():
            if name in RACE_FIELDS:
                continue
            if name == "compute":
                metrics[name] = value + rest.metrics[name]
            elif name in ("macs", "seconds"):
                metrics[name] = value
            else:
                metrics[name] = (n * value + m * rest.metrics[name]) / (n + m)
        metrics.update(quality=quality, row_quality=rows, rows_scored=n + m)
        return Evaluation(first.key, quality, first.cost, metrics)
