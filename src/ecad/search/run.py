"""A resumable NSGA-II search: the algorithm assembled from its parts, run ask / evaluate / tell.

Resuming replays the run from its seed: pymoo's NSGA-II is deterministic given the seed and the objective values,
and every objective value already computed comes back from the evaluation store instantly. So a run killed at any
point (even ``kill -9`` mid-generation) continues where it stopped, loses at most the candidate in flight, and
reaches exactly the front an uninterrupted run reaches. Nothing is pickled: the run is ``config.json``, the SQLite
store, and JSON/PNG/safetensors outputs (:mod:`.rundir`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.infill import InfillCriterion

from ..adapters import ModelLayout
from ..schedule import CacheSchedule, schedule_key
from ..schedule.heuristics import initial_population
from .budget import BudgetSpent, ComputeBudget, evaluation_compute
from .config import SearchConfig
from .console import plan, say
from .operators import schedule_mating
from .problem import CacheSearchProblem, ScheduleEncoding
from .racing import QualityRace, first_rows
from .records import GenerationRecords
from .rundir import RunDirectory
from .surrogate import RidgeSurrogate


@dataclass
class SearchResult:
    front: list[dict[str, Any]]
    generations: int
    evaluations: int
    hypervolumes: list[float]
    compute_spent: float = 0.0  # image-equivalents, everything the store holds
    stopped: str | None = None  # why the run stopped before config.generations (the budget), else None


def quality_race(config: SearchConfig, rows: int, reference: CacheSchedule) -> QualityRace:
    """``--strategy race``: candidates are scored on the first rows and completed only while they can still matter;
    ``reference`` (the first seed) always completes."""
    first = first_rows(rows, config.race_rows)
    return QualityRace(
        rows, first, config.race_confidence, config.race_first_generation, complete=[schedule_key(reference)]
    )


def mating(config: SearchConfig, encoding: ScheduleEncoding, surrogate: RidgeSurrogate | None) -> InfillCriterion:
    """The configured crossover and mutation, screened by the surrogate where ``--screen`` asks for it."""
    return schedule_mating(
        encoding.values,
        encoding.n_var,
        config.crossover_points,
        config.crossover_prob,
        config.mutation_prob,
        surrogate,
        config.screen,
    )


def run_search(
    config: SearchConfig,
    run_dir: RunDirectory,
    layout: ModelLayout,
    executor: Any,
    full_cost: float,
    progress: bool = True,
    image_size: tuple[int, int] | None = None,
) -> SearchResult:
    """Run (or resume) NSGA-II until ``config.generations`` generations are done or the budget is spent."""
    encoding = ScheduleEncoding(layout, config.num_steps, config.forecast_order)
    seeds = initial_population(
        layout, config.num_steps, config.population, seed=config.seed, forecast_order=config.forecast_order
    )
    rows = len(config.prompts) * config.images_per_prompt  # calibration rows per candidate
    store = run_dir.store()
    budget = ComputeBudget(config.budget, (evaluation_compute(e, rows, full_cost) for e in store.evaluations()))
    race = quality_race(config, rows, seeds[0]) if config.strategy == "race" else None
    surrogate = RidgeSurrogate(encoding.values) if config.screen > 1 else None
    for line in plan(config, rows, budget, race):
        say(line, progress)
    records = GenerationRecords(
        config, run_dir, store, encoding, seeds, full_cost, budget, race, surrogate, image_size, progress
    )
    algorithm = NSGA2(
        pop_size=config.population,
        sampling=np.stack([encoding.encode(s) for s in seeds]),
        mating=mating(config, encoding, surrogate),
        eliminate_duplicates=True,
        callback=records,
    )
    problem = CacheSearchProblem(encoding, store, executor, full_cost, records.on_candidate, budget, race)
    algorithm.setup(problem, termination=("n_gen", config.generations), seed=config.seed, verbose=False)
    stopped = None
    try:
        while algorithm.has_next():
            population = algorithm.ask()
            records.start(len(population))
            try:
                algorithm.evaluator.eval(problem, population)
            except BudgetSpent as spent:
                stopped = records.stop(spent)
                break
            algorithm.tell(infills=population)  # pymoo calls records.notify
    finally:
        records.close()
        evaluations = len(store)
        store.close()
    return SearchResult(
        records.front_rows, len(records.hypervolumes), evaluations, records.hypervolumes, budget.spent, stopped
    )
