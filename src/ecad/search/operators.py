"""pymoo operators of the search: NSGA-II's mating over schedules, and a mutation for three actions (reuse 0,
recompute 1, forecast 2).

Point crossover works on integer genes as on bits; a bit flip does not: :class:`ActionMutation` moves a gene to one
of the other actions, each equally likely, with the same per-gene probability a bit flip has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import binary_tournament
from pymoo.core.duplicate import DefaultDuplicateElimination
from pymoo.core.infill import InfillCriterion
from pymoo.core.mating import Mating
from pymoo.core.mutation import Mutation
from pymoo.operators.crossover.pntx import PointCrossover
from pymoo.operators.mutation.bitflip import BitflipMutation
from pymoo.operators.selection.tournament import TournamentSelection

from .surrogate import RidgeSurrogate, ScreenedMating


class ActionMutation(Mutation):
    """Each gene, with probability ``prob_var``, takes one of the other ``actions - 1`` values uniformly."""

    def __init__(self, actions: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.actions = actions

    def _do(
        self, problem: Any, X: np.ndarray, random_state: np.random.Generator | None = None, **kwargs: Any
    ) -> np.ndarray:
        X = np.asarray(X).astype(int)
        prob_var = self.get_prob_var(problem, size=(len(X), 1))
        mutate = random_state.random(X.shape) < prob_var
        shift = random_state.integers(1, self.actions, size=X.shape)
        return np.where(mutate, (X + shift) % self.actions, X)


def schedule_mating(
    values: int,
    n_var: int,
    crossover_points: int,
    crossover_prob: float,
    mutation_prob: float,
    surrogate: RidgeSurrogate | None = None,
    screen: int = 1,
) -> InfillCriterion:
    """NSGA-II's own mating (binary tournament, duplicates eliminated) with point crossover and a bit flip (``values``
    2) or :class:`ActionMutation` (3) of each gene with probability ``1 / n_var`` in a mutated offspring. With a
    ``surrogate`` it comes screened: :class:`ScreenedMating` makes ``screen`` times the offspring and keeps those the
    surrogate ranks best."""
    mutation = (
        ActionMutation(values, prob=mutation_prob, prob_var=1.0 / n_var)
        if values > 2
        else BitflipMutation(prob=mutation_prob, prob_var=1.0 / n_var)
    )
    mating = Mating(
        TournamentSelection(func_comp=binary_tournament),
        PointCrossover(n_points=crossover_points, prob=crossover_prob),
        mutation,
        eliminate_duplicates=DefaultDuplicateElimination(),
        n_max_iterations=100,
    )
    return mating if surrogate is None else ScreenedMating(mating, surrogate, screen)
