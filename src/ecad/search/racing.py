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
front scored on every row, so no candidate of the first generation is rejected, unless the run races it too
(``race_first_generation``): then the first generation is scored on its first rows, and each candidate is compared
with the generation's own candidates there (:meth:`QualityRace.decide_among`), once all of them are scored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import numpy as np
import torch
from scipy.stats import t as student_t

from .store import Evaluation

# An eighth of the calibration rows first (at least 2, for a variance), rejected where a cheaper front point has a
# higher mean there (confidence 0.5: t = 0, successive halving), the first generation in full: the settings
# benchmarks/search_efficiency.py measured reaching the paper strategy's held-out front for less (README; racing
# the first generation too was no better there).
FIRST_ROWS = 0.125
CONFIDENCE = 0.5  # one-sided, per front point compared with
FIRST_GENERATION = False
RACE_FROM_ROWS = 32  # the fewest calibration rows racing was measured on (4 first): below, a new run is fast
# Runs from before these were settings raced a quarter of the rows at 0.95, the first generation in full.
RACE_BEFORE = {"race_rows": 0.25, "race_confidence": 0.95, "race_first_generation": False}
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

    def __init__(
        self,
        rows: int,
        first: int | None = None,
        confidence: float = CONFIDENCE,
        first_generation: bool = FIRST_GENERATION,
        complete: Iterable[str] = (),
    ) -> None:
        first = first_rows(rows) if first is None else first
        if not 2 <= first <= rows:
            raise ValueError(f"racing needs at least 2 first rows of the {rows} calibration rows, got {first}.")
        self.rows = rows
        self.first, self.rest = range(first), range(first, rows)
        self.critical = float(student_t.ppf(confidence, first - 1))
        self.front: list[tuple[float, np.ndarray]] = []  # (cost, per-row quality on the first rows)
        self.first_generation = first_generation  # with no front yet, race against the generation itself
        self.always_complete = frozenset(complete)  # keys never rejected (no caching: the reference of every report)

    def set_front(self, front: Iterable[Evaluation]) -> None:
        """The reference for the next generation's decisions: front points scored on every row."""
        self.front = [self._reference(e) for e in front]

    @property
    def among_generation(self) -> bool:
        """Whether this generation's decisions wait for all its first stages (:meth:`decide_among`)."""
        return self.first_generation and not self.front

    def _reference(self, evaluation: Evaluation) -> tuple[float, np.ndarray]:
        return evaluation.cost, np.asarray(evaluation.metrics["row_quality"][: len(self.first)], dtype=float)

    def upper_bounds(self, evaluation: Evaluation, front: list[tuple[float, np.ndarray]] | None = None) -> list[float]:
        """The upper confidence bound of the mean paired difference to each front point costing at most as much."""
        scores = np.asarray(evaluation.metrics["row_quality"], dtype=float)
        bounds = []
        for cost, reference in self.front if front is None else front:
            if cost <= evaluation.cost:
                d = scores - reference
                bounds.append(float(d.mean() + self.critical * d.std(ddof=1) / math.sqrt(len(d))))
        return bounds

    def decide(self, evaluation: Evaluation) -> Evaluation:
        """A first-stage evaluation, marked ``rejected`` or ``pending`` (or as it is, when it already has every
        row: no rows are left to race for)."""
        if not self.rest:
            return evaluation
        return self._mark(evaluation, self._beaten(evaluation, self.front))

    def pend(self, evaluation: Evaluation) -> Evaluation:
        """A first-stage evaluation whose decision waits for the rest of its generation (:meth:`decide_among`)."""
        return self._mark(evaluation, False) if self.rest else evaluation

    def decide_among(self, generation: list[Evaluation]) -> list[Evaluation]:
        """The decisions of a generation raced against itself: each candidate is compared, as against a front, with
        the generation's candidates (every one's first rows, whatever its own decision), so the first stage's
        Pareto set goes on (under the means rule). Returns the candidates this rejects that were pending; a
        candidate already complete, or rejected by an earlier pass (a resumed run), is as it was."""
        reference = [self._reference(e) for e in generation]
        return [
            self._mark(e, True)
            for e in generation
            if e.metrics.get("race") == PENDING and e.key not in self.always_complete and self._beaten(e, reference)
        ]

    def _beaten(self, evaluation: Evaluation, front: list[tuple[float, np.ndarray]]) -> bool:
        """Whether some point of ``front`` no more expensive is better on the first rows (its bound below 0)."""
        return any(bound < 0 for bound in self.upper_bounds(evaluation, front))

    @staticmethod
    def _mark(evaluation: Evaluation, rejected: bool) -> Evaluation:
        return dataclasses.replace(
            evaluation, metrics={**evaluation.metrics, "race": REJECTED if rejected else PENDING}
        )

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
