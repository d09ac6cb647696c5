"""The search space and objectives as a pymoo ``Problem``: binary variables, two objectives, one constraint.

Variables are the schedule bits that can change: existing (block, component) pairs at steps 1..S-1 (step 0 always
computes, and components a block lacks cannot be switched on). Objectives, both minimised: ``-quality`` and cost
as a fraction of no caching. Constraint (the paper's): a candidate reuses at least one output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pymoo.core.problem import Problem

from ..adapters import ModelLayout
from ..schedule import CacheSchedule
from .budget import ComputeBudget
from .store import Evaluation, EvaluationStore, schedule_key


class ScheduleEncoding:
    """Flattens a layout's free bits to a vector and back."""

    def __init__(self, layout: ModelLayout, num_steps: int) -> None:
        self.template = layout.full_schedule(num_steps)
        self.free = self.template.recompute.clone()
        self.free[0] = False
        self.n_var = int(self.free.sum())

    def encode(self, schedule: CacheSchedule) -> np.ndarray:
        return schedule.recompute[self.free].numpy().astype(bool)

    def decode(self, x: np.ndarray) -> CacheSchedule:
        bits = self.template.recompute.clone()
        bits[self.free] = torch.from_numpy(np.asarray(x, dtype=bool))
        return self.template.like(bits)


class CacheSearchProblem(Problem):
    """Evaluates a generation's new candidates through the executor; the store answers the ones seen before.

    With a ``budget``, every new evaluation's compute is added to it, and no candidate starts once it is spent
    (:class:`ecad.search.budget.BudgetSpent` ends the generation; what was evaluated is stored).
    """

    def __init__(
        self,
        encoding: ScheduleEncoding,
        store: EvaluationStore,
        executor: Any,
        full_cost: float,
        on_candidate: Callable[[Evaluation, bool], None] | None = None,
        budget: ComputeBudget | None = None,
    ) -> None:
        super().__init__(n_var=encoding.n_var, n_obj=2, n_ieq_constr=1, xl=0, xu=1, vtype=bool)
        self.encoding = encoding
        self.store = store
        self.executor = executor
        self.full_cost = full_cost
        self.on_candidate = on_candidate or (lambda evaluation, cached: None)
        self.budget = budget or ComputeBudget(None)

    def _evaluate(self, X: np.ndarray, out: dict, *args: Any, **kwargs: Any) -> None:
        schedules = [self.encoding.decode(x) for x in X]
        keys = [schedule_key(s) for s in schedules]
        known = {key: self.store.get(key) for key in keys}
        missing = {key: s for key, s in zip(keys, schedules) if known[key] is None}
        for key, evaluation in known.items():
            if evaluation is not None:
                self.on_candidate(evaluation, True)
        if missing:
            self.budget.check()
            evaluations = self.executor.map(list(missing.values()))
            try:
                started = time.perf_counter()
                for done, evaluation in enumerate(evaluations, 1):
                    self.store.put(evaluation)  # committed before anything else happens: crash-safe
                    known[evaluation.key] = evaluation
                    self.budget.add(float(evaluation.metrics.get("compute", 0.0)), time.perf_counter() - started)
                    self.on_candidate(evaluation, False)
                    if done < len(missing):
                        self.budget.check()
                    started = time.perf_counter()
            finally:
                getattr(evaluations, "close", lambda: None)()
        out["F"] = np.array([[-known[k].quality, known[k].cost / self.full_cost] for k in keys], dtype=float)
        out["G"] = np.array([[1.0 - float((~np.asarray(x, dtype=bool)).sum())] for x in X], dtype=float)
