"""A search's compute in image-equivalents, and the ``--budget`` that caps it.

One image-equivalent is the MACs of one uncached image at the calibration call; a cached candidate counts its
schedule's MACs per calibration row, and steps it replayed from a shared prefix count nothing (they were paid by
the candidate that computed them). Each evaluation stores what it spent (``compute`` in its metrics), so a resumed
run knows what was spent before it; work lost with a killed process (the candidate in flight) is not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

from .store import Evaluation


class BudgetSpent(Exception):
    """The run reached its ``--budget``: it stops before the next candidate, resumable with a larger budget."""


def evaluation_compute(evaluation: Evaluation, rows: int, full_cost: float) -> float:
    """What an evaluation spent; runs from before compute was recorded: its cost fraction per row."""
    compute = evaluation.metrics.get("compute")
    return float(compute) if compute is not None else rows * evaluation.cost / full_cost


class ComputeBudget:
    """What the run has spent (everything in its store, then each new evaluation) against its limit, and the
    measured seconds per image-equivalent on this device for the estimate."""

    def __init__(self, limit: float | None, spent: Iterable[float] = ()) -> None:
        self.limit = limit
        self.spent = float(sum(spent))
        self.measured = 0.0  # image-equivalents evaluated in this process
        self.seconds = 0.0  # and the wall time they took

    def check(self) -> None:
        if self.limit is not None and self.spent >= self.limit:
            raise BudgetSpent(f"budget spent: {self.spent:.1f} of {self.limit:g} image-equivalents")

    def add(self, compute: float, seconds: float) -> None:
        self.spent += compute
        self.measured += compute
        self.seconds += seconds

    def seconds_per_image(self) -> float | None:
        return self.seconds / self.measured if self.measured > 0 else None

    def describe(self) -> str:
        """The running total as the progress line shows it."""
        total = f"{self.spent:.1f}" + (f"/{self.limit:g}" if self.limit is not None else "")
        return f"compute {total} image-eq"
