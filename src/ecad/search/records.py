"""What a search records after each generation, as a pymoo ``Callback``: the archive of everything evaluated, its
front and hypervolume, the front's files and plot, the generation file, and a line on the console."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pymoo.core.callback import Callback
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from tqdm.auto import tqdm

from ..report.plots import plot_front
from ..schedule import CacheSchedule, schedule_key
from .budget import BudgetSpent, ComputeBudget, evaluation_compute
from .config import SearchConfig, speedup_label
from .console import estimate, say
from .problem import ScheduleEncoding
from .racing import REJECTED, QualityRace, on_every_row
from .rundir import RunDirectory, front_metadata
from .samples import SampleStore
from .store import Evaluation, EvaluationStore
from .surrogate import RidgeSurrogate

# every schedule evaluated so far, by key: genes, objectives, whether it may be on the front (feasible, every row)
Archive = dict[str, tuple[np.ndarray, np.ndarray, bool]]


def archive_front(archive: Archive) -> list[str]:
    """Keys of the non-dominated feasible schedules among everything evaluated so far, in evaluation order.

    Not NSGA-II's surviving population: its first front is cut by crowding distance once it outgrows the population,
    which would drop non-dominated schedules from the front the run reports.
    """
    keys = [key for key, (_, _, feasible) in archive.items() if feasible]
    if not keys:
        return []
    nondominated = NonDominatedSorting().do(np.array([archive[k][1] for k in keys]), only_non_dominated_front=True)
    return [keys[i] for i in sorted(nondominated)]


class GenerationRecords(Callback):
    """Called by pymoo after each generation is told (:meth:`notify`); between generations it prepares the next one:
    the race compares against the new front, the surrogate refits on everything evaluated, in evaluation order.

    A resumed run replays its generations from the store, so the records it writes are those of an uninterrupted run.
    """

    def __init__(
        self,
        config: SearchConfig,
        run_dir: RunDirectory,
        store: EvaluationStore,
        encoding: ScheduleEncoding,
        seeds: list[CacheSchedule],
        full_cost: float,
        budget: ComputeBudget,
        race: QualityRace | None = None,
        surrogate: RidgeSurrogate | None = None,
        image_size: tuple[int, int] | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        self.config, self.run_dir, self.store, self.encoding = config, run_dir, store, encoding
        self.full_cost, self.budget, self.race, self.surrogate, self.progress = (
            full_cost,
            budget,
            race,
            surrogate,
            progress,
        )
        self.rows = len(config.prompts) * config.images_per_prompt  # calibration rows per candidate
        self.names = {schedule_key(s): s.metadata.get("name") for s in seeds}
        self.no_cache_key = schedule_key(seeds[0])  # the first seed is no caching, evaluated in generation 0
        self.image_size = image_size
        self.samples = SampleStore(run_dir.path)
        self.archive: Archive = {}
        self.reference_point: np.ndarray | None = None  # fixed after the first generation, so hypervolumes compare
        self.hypervolumes: list[float] = []
        self.front_rows: list[dict[str, Any]] = []
        self.bar = tqdm(total=config.generations, desc="generations", unit="gen", position=0, disable=not progress)
        self.candidates = tqdm(desc="candidates", unit="cand", leave=False, position=1, disable=not progress)
        self._prepare()

    def start(self, candidates: int) -> None:
        """A generation's candidates are about to be evaluated."""
        self.candidates.reset(total=candidates)

    def on_candidate(self, evaluation: Evaluation, cached: bool) -> None:
        self.candidates.set_postfix_str(self.budget.describe(), refresh=False)
        self.candidates.update()
        self.new += 0 if cached else 1
        self.rejected += int(not cached and evaluation.metrics.get("race") == REJECTED)

    def stop(self, spent: BudgetSpent) -> str:
        """The budget ran out during a generation: say so, and return why the run stopped."""
        stopped = f"{spent}; stopped in generation {len(self.hypervolumes)}, resume with a larger --budget to continue"
        say(stopped, self.progress)
        return stopped

    def close(self) -> None:
        self.bar.close()
        self.candidates.close()

    def notify(self, algorithm: Any) -> None:
        population = algorithm.off  # the candidates just told
        F = population.get("F")
        if self.reference_point is None:
            self.reference_point = np.array([F[:, 0].max() + 1e-9, 1.0 + 1e-9])
        keys = [schedule_key(self.encoding.decode(x)) for x in population.get("X")]
        for key, x, f, g in zip(keys, population.get("X"), F, population.get("G"), strict=True):
            if key not in self.archive:
                self.archive[key] = (x, f, bool(g[0] <= 0) and on_every_row(self.store.get(key)))
        summary = self._write_front()
        if self.surrogate is not None and self.surrogate.fitted:
            summary["screened"] = algorithm.mating.screened
        self._write_generation(keys, F, summary)
        self._prepare()

    def _write_front(self) -> dict[str, Any]:
        """Write the archive's front, its samples and plot; the generation's summary."""
        front_keys = archive_front(self.archive)
        front_f = np.array([self.archive[k][1] for k in front_keys])
        hv = float(HV(ref_point=self.reference_point)(front_f)) if front_keys else 0.0
        self.hypervolumes.append(hv)
        no_cache = self.store.get(self.no_cache_key)
        front = [(self.encoding.decode(self.archive[k][0]), self.store.get(k)) for k in front_keys]
        describe = front_metadata(self.config, self.image_size, no_cache)
        self.front_rows = rows = self.run_dir.write_front(front, self.full_cost, self.config.cost, describe, no_cache)
        self.samples.retain([*front_keys, *self.names])
        plot_front(
            self.run_dir.path / "front.png",
            [(self.full_cost / cost, quality) for quality, cost in self.store.objectives()],
            [(r["speedup"], r["quality"]) for r in rows],
            speedup=speedup_label(self.config.cost),
            metric=self.config.metric,
            generation=len(self.hypervolumes) - 1,
        )
        return {
            "front_size": len(rows),
            "best_quality": max(r["quality"] for r in rows),
            "lowest_cost": min(r["cost"] for r in rows),
            "max_speedup": max(r["speedup"] for r in rows),
            "hypervolume": hv,
            "new_evaluations": self.new,
            "seconds": time.perf_counter() - self.started,
            # every schedule evaluated up to this generation, as it was spent (shared prefixes counted once)
            "compute_spent": sum(
                evaluation_compute(self.store.get(k), self.rows, self.full_cost) for k in self.archive
            ),
        }

    def _write_generation(self, keys: list[str], F: np.ndarray, summary: dict[str, Any]) -> None:
        """Write the generation's file and say how the run stands."""
        rows = []
        for key, (neg_quality, cost_fraction) in zip(keys, F, strict=True):
            rows.append(
                {
                    "key": key,
                    "name": self.names.get(key),
                    "quality": -float(neg_quality),
                    "cost_fraction": float(cost_fraction),
                }
            )
            evaluation = self.store.get(key)
            if self.race is not None and not on_every_row(evaluation):  # its quality is a partial mean
                rows[-1]["rows_scored"] = evaluation.metrics["rows_scored"]
        if self.race is not None:
            summary["rejected"] = self.rejected
        generation = len(self.hypervolumes) - 1
        self.run_dir.write_generation(generation, rows, summary)
        self.bar.update()
        say(
            f"gen {generation}: front {summary['front_size']}, best quality {summary['best_quality']:.4f}, "
            f"lowest cost {summary['lowest_cost']:.4g} ({summary['max_speedup']:.2f}x "
            f"{speedup_label(self.config.cost)}), HV {summary['hypervolume']:.4f}, {self.new} new evaluations"
            + (f" ({self.rejected} rejected after the first rows)" if self.race is not None else "")
            + f", {self.budget.describe()}",
            self.progress,
        )
        if generation == 0 and self.new and (line := estimate(self.config, self.rows, self.budget)):
            say(line, self.progress)

    def _prepare(self) -> None:
        """Before the next generation: its counts and clock, the race's front, the surrogate's fit."""
        self.started, self.new, self.rejected = time.perf_counter(), 0, 0
        if self.race is not None:  # decisions against the front as it is now, whatever order candidates finish in
            self.race.set_front(self.store.get(k) for k in archive_front(self.archive))
        if self.surrogate is not None and self.archive:  # fitted on what was evaluated before it, in order
            self.surrogate.fit(
                np.stack([x for x, _, _ in self.archive.values()]), np.stack([f for _, f, _ in self.archive.values()])
            )
