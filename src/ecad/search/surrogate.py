"""Surrogate pre-screening (``--screen K``): generate K times the offspring a generation evaluates and evaluate the
ones a model of the objectives ranks best.

The model is a ridge regression of both objectives (``-quality`` and the cost fraction) on the genes (one column per
gene and action other than reuse), fitted on every schedule the run has evaluated before the generation (partial
race means included: they estimate the same quality). Its penalty is the one with the lowest leave-one-out error of
the quality, from a fixed grid (closed form: no refits). The K x N offspring NSGA-II's mating makes are ranked on the
predicted objectives by NSGA-II's own survival (non-dominated rank, then crowding) and the best N are evaluated; the
rest are never generated.

Everything the model sees comes from the evaluation store in a fixed order, so a resumed run fits the same model and
screens the same offspring (the run stays exactly resumable). benchmarks/surrogate_screening.py measures how well
the model ranks held-back candidates; benchmarks/search_efficiency.py what screening saves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.infill import InfillCriterion
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

PENALTIES = (0.1, 1.0, 10.0, 100.0, 1000.0)
MIN_SAMPLES = 8  # fewer evaluated schedules than this: offspring are not screened


def features(X: np.ndarray, values: int) -> np.ndarray:
    """One column per gene and non-reuse action: the bits themselves for two actions, recompute and forecast
    indicators for three."""
    X = np.asarray(X).astype(int)
    return np.concatenate([(X == value) for value in range(1, values)], axis=1).astype(float)


class RidgeSurrogate:
    """Both objectives as a linear function of the genes, in the dual form (fewer samples than genes)."""

    def __init__(self, values: int) -> None:
        self.values = values
        self.penalty: float | None = None
        self._weights: np.ndarray | None = None  # [features, 2], on centred features

    @property
    def fitted(self) -> bool:
        return self._weights is not None

    def fit(self, X: np.ndarray, F: np.ndarray) -> None:
        """Fit on evaluated genes ``X`` and objectives ``F`` (``[n, 2]``); below :data:`MIN_SAMPLES`, unfit."""
        if len(X) < MIN_SAMPLES:
            self._weights = None
            return
        Z = features(X, self.values)
        self._mean_z, self._mean_f = Z.mean(axis=0), F.mean(axis=0)
        Zc, Fc = Z - self._mean_z, F - self._mean_f
        eigenvalues, vectors = np.linalg.eigh(Zc @ Zc.T)
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        projected = vectors.T @ Fc
        best = None
        for penalty in PENALTIES:
            shrink = eigenvalues / (eigenvalues + penalty)
            hat_diagonal = (vectors**2) @ shrink  # leverage of each sample (centred data)
            residual = Fc[:, 0] - vectors @ (shrink * projected[:, 0])
            loo = float(np.mean((residual / (1.0 - hat_diagonal - 1.0 / len(X))) ** 2))
            if best is None or loo < best[0]:
                best = (loo, penalty)
        self.penalty = best[1]
        dual = vectors @ (projected / (eigenvalues + self.penalty)[:, None])  # (K + penalty I)^-1 Fc
        self._weights = Zc.T @ dual

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted objectives ``[len(X), 2]``."""
        return (features(X, self.values) - self._mean_z) @ self._weights + self._mean_f


class ScreenedMating(InfillCriterion):
    """NSGA-II's mating, made ``factor`` times over, screened down to the offspring the surrogate ranks best."""

    def __init__(self, mating: InfillCriterion, surrogate: RidgeSurrogate, factor: int) -> None:
        super().__init__()
        self.mating, self.surrogate, self.factor = mating, surrogate, factor
        self.survival = RankAndCrowding()
        self.screened = 0  # offspring made for the last generation

    def do(self, problem: Any, pop: Population, n_offsprings: int, **kwargs: Any) -> Population:
        off = self.mating.do(problem, pop, n_offsprings * (self.factor if self.surrogate.fitted else 1), **kwargs)
        self.screened = len(off)
        if len(off) <= n_offsprings:  # unfit (nothing to rank with), or too few unique offspring to choose from
            return off
        ranked = Population.new(X=off.get("X"), F=self.surrogate.predict(off.get("X")))
        keep = self.survival.do(
            Problem(n_var=problem.n_var, n_obj=2),
            ranked,
            n_survive=n_offsprings,
            random_state=kwargs.get("random_state"),
            return_indices=True,
        )
        return off[np.sort(keep)]
