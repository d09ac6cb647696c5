"""The search space and objectives as a pymoo ``Problem``: binary (or three-valued) variables, two objectives, one
constraint.

Variables are the schedule bits that can change: existing (block, component) pairs at steps 1..S-1 (step 0 always
computes, and components a block lacks cannot be switched on). With the forecast action each variable is an integer
action, ``0`` reuse, ``1`` recompute, ``2`` forecast. Objectives, both minimised: ``-quality`` and cost as a fraction
of no caching. Constraint (the paper's): a candidate reuses (or forecasts) at least one output.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pymoo.core.problem import Problem

from ..adapters import ModelLayout
from ..schedule import CacheSchedule, schedule_key
from .budget import ComputeBudget
from .racing import PENDING, QualityRace
from .store import Evaluation, EvaluationStore


class ScheduleEncoding:
    """Flattens a layout's free bits to a vector and back: bools (the paper's two actions) or, with a
    ``forecast_order``, integer actions (``0`` reuse, ``1`` recompute, ``2`` forecast)."""

    def __init__(self, layout: ModelLayout, num_steps: int, forecast_order: int | None = None) -> None:
        self.template = layout.full_schedule(num_steps)
        if forecast_order is not None:
            self.template = dataclasses.replace(self.template, forecast_order=forecast_order)
        self.forecasts = forecast_order is not None
        self.free = self.template.recompute.clone()
        self.free[0] = False
        self.n_var = int(self.free.sum())

    @property
    def values(self) -> int:
        """How many values a variable takes."""
        return 3 if self.forecasts else 2

    def encode(self, schedule: CacheSchedule) -> np.ndarray:
        if self.forecasts:
            return schedule.actions[self.free].numpy().astype(int)
        return schedule.recompute[self.free].numpy().astype(bool)

    def decode(self, x: np.ndarray) -> CacheSchedule:
        if self.forecasts:
            actions = self.template.actions.clone()
            actions[self.free] = torch.from_numpy(np.asarray(x).astype(np.uint8))
            return self.template.with_actions(actions)
        bits = self.template.recompute.clone()
        bits[self.free] = torch.from_numpy(np.asarray(x, dtype=bool))
        return self.template.like(bits)


class CacheSearchProblem(Problem):
    """Evaluates a generation's new candidates through the executor; the store answers the ones seen before.

    With a ``budget``, every new evaluation's compute is added to it, and no candidate starts once it is spent
    (:class:`ecad.search.budget.BudgetSpent` ends the generation; what was evaluated is stored). With a ``race``
    (:class:`ecad.search.racing.QualityRace`) the new candidates are scored on its first rows, each decision is
    stored with them, and the ones not rejected are completed on the remaining rows (also when a stopped run left
    them pending). A race of the first generation against itself decides once all its first stages are stored.
    """

    def __init__(
        self,
        encoding: ScheduleEncoding,
        store: EvaluationStore,
        executor: Any,
        full_cost: float,
        on_candidate: Callable[[Evaluation, bool], None] | None = None,
        budget: ComputeBudget | None = None,
        race: QualityRace | None = None,
    ) -> None:
        super().__init__(
            n_var=encoding.n_var,
            n_obj=2,
            n_ieq_constr=1,
            xl=0,
            xu=encoding.values - 1,
            vtype=int if encoding.forecasts else bool,
        )
        self.encoding = encoding
        self.store = store
        self.executor = executor
        self.full_cost = full_cost
        self.on_candidate = on_candidate or (lambda evaluation, cached: None)
        self.budget = budget or ComputeBudget(None)
        self.race = race

    def _evaluate(self, X: np.ndarray, out: dict, *args: Any, **kwargs: Any) -> None:
        decoded = [self.encoding.decode(x) for x in X]
        keys = [schedule_key(s) for s in decoded]
        schedules = dict(zip(keys, decoded, strict=True))
        known = {key: self.store.get(key) for key in schedules}
        for evaluation in known.values():
            if evaluation is not None and evaluation.metrics.get("race") != PENDING:
                self.on_candidate(evaluation, True)
        missing = [key for key, evaluation in known.items() if evaluation is None]
        if self.race is None:
            self._evaluate_rows(schedules, missing, known, None, lambda evaluation: evaluation)
        else:
            race = self.race
            among = race.among_generation  # no front yet: decided together, once every first stage is scored
            self._evaluate_rows(schedules, missing, known, race.first, race.pend if among else race.decide)
            if among:
                for evaluation in race.decide_among([known[key] for key in schedules]):
                    self.store.put(evaluation, replace=True)
                    known[evaluation.key] = evaluation
                    self.on_candidate(evaluation, False)
            pending = [key for key, evaluation in known.items() if evaluation.metrics.get("race") == PENDING]
            self._evaluate_rows(
                schedules,
                pending,
                known,
                race.rest,
                lambda evaluation: race.complete(known[evaluation.key], evaluation),
                replace=True,
            )
        out["F"] = np.array([[-known[k].quality, known[k].cost / self.full_cost] for k in keys], dtype=float)
        out["G"] = np.array([[1.0 - float((np.asarray(x).astype(int) != 1).sum())] for x in X], dtype=float)

    def _evaluate_rows(
        self,
        schedules: dict[str, CacheSchedule],
        keys: list[str],
        known: dict[str, Evaluation | None],
        rows: range | None,
        finish: Callable[[Evaluation], Evaluation],
        replace: bool = False,
    ) -> None:
        """Evaluate ``keys`` on ``rows`` (``None``: all) through the executor; ``finish`` makes what is stored."""
        if not keys:
            return
        self.budget.check()
        evaluations = self.executor.map([schedules[key] for key in keys], rows)
        try:
            started = time.perf_counter()
            for done, evaluation in enumerate(evaluations, 1):
                stored = finish(evaluation)
                self.store.put(stored, replace)  # committed before anything else happens: crash-safe
                known[stored.key] = stored
                self.budget.add(float(evaluation.metrics.get("compute", 0.0)), time.perf_counter() - started)
                if stored.metrics.get("race") != PENDING:
                    self.on_candidate(stored, False)
                if done < len(keys):
                    self.budget.check()
                started = time.perf_counter()
        finally:
            getattr(evaluations, "close", lambda: None)()
