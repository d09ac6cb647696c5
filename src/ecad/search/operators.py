"""pymoo operators for schedules over three actions (reuse 0, recompute 1, forecast 2).

Point crossover works on integer genes as on bits; a bit flip does not: :class:`ActionMutation` moves a gene to one
of the other actions, each equally likely, with the same per-gene probability a bit flip has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.mutation import Mutation


class ActionMutation(Mutation):
    """Each gene, with probability ``prob_var``, takes one of the other ``actions - 1`` values uniformly."""

    def __init__(self, actions: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.actions = actions

    def _do(self, problem: Any, X: np.ndarray, random_state: np.random.Generator | None = None,
            **kwargs: Any) -> np.ndarray:
        X = np.asarray(X).astype(int)
        prob_var = self.get_prob_var(problem, size=(len(X), 1))
        mutate = random_state.random(X.shape) < prob_var
        shift = random_state.integers(1, self.actions, size=X.shape)
        return np.where(mutate, (X + shift) % self.actions, X)
