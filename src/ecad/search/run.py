"""A resumable NSGA-II search run and its directory.

Resuming replays the run from its seed: pymoo's NSGA-II is deterministic given the seed and the objective values,
and every objective value already computed comes back from the evaluation store instantly. So a run killed at any
point (even ``kill -9`` mid-generation) continues where it stopped, loses at most the candidate in flight, and
reaches exactly the front an uninterrupted run reaches. Nothing is pickled: the run is ``config.json``, the SQLite
store, and JSON/PNG/safetensors outputs.

Run directory::

    config.json            what was asked (checked on --resume)
    evaluations.sqlite     every evaluated schedule: key, quality, cost, metrics
    reference.safetensors  uncached calibration images (metrics that need a reference)
    generations/NNNN.json  each generation's population: keys, names, objectives
    front.json, front/     the current Pareto front: summary and one schedule file per point
    samples/               the first calibration images of the front's and the baselines' schedules (the report's)
    front.png              the front plot
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.indicators.hv import HV
from pymoo.operators.crossover.pntx import PointCrossover
from pymoo.operators.mutation.bitflip import BitflipMutation
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from tqdm.auto import tqdm

from ..adapters import ModelLayout
from ..heuristics import initial_population
from ..loading import DTYPES
from ..macs import CONVENTIONS
from ..metrics import METRICS, RowMetric
from ..names import ACTIONS, STRATEGIES, metric_columns
from ..provenance import GenerationSettings, annotate, mac_record, score_record
from ..schedule import CacheSchedule
from ..schedule_io import write_json
from ..validation import (
    check_fields, checked, device, flag, one_of, optional, pixels, read_json, real, text, texts, whole,
)
from .budget import BudgetSpent, ComputeBudget, evaluation_compute
from .operators import ActionMutation
from .problem import CacheSearchProblem, ScheduleEncoding
from .racing import (
    CONFIDENCE, FIRST_GENERATION, FIRST_ROWS, RACE_BEFORE, RACE_FIELDS, RACE_FROM_ROWS, REJECTED, QualityRace,
    first_rows, on_every_row,
)
from .surrogate import RidgeSurrogate, ScreenedMating
from .samples import SampleStore
from .store import CorruptRunError, Evaluation, EvaluationStore, schedule_key

logger = logging.getLogger(__name__)

CONFIG_FORMAT = "ecad.search-run/1"
# How costs are counted; a run is only resumed with the cost model it was started with (runs from before costs were
# counted at the observed call have no such field).
COST_MODEL = "observed-call/1"
_COST_MODEL_BEFORE = "assumed-inputs/0"
# Settings that may differ on --resume without changing any result.
RESUMABLE_CHANGES = ("generations", "device", "budget")
COSTS = ("macs", "latency")
# What a generation file keeps from before when a resumed run replays the generation (it took its time then).
REPLAY_KEEPS = ("seconds", "new_evaluations", "rejected")
# Numbers an evaluation records that are not its score (kept out of score records and front rows' scores).
NOT_SCORES = ("macs", "seconds", "compute", *RACE_FIELDS)

# The shapes of the files `ecad front` and `ecad report` read back.
FRONT_SCHEMA = {
    "type": "object", "required": ["full_cost", "front"],
    "properties": {
        "full_cost": {"type": "number", "exclusiveMinimum": 0},
        "front": {"type": "array", "items": {
            "type": "object", "required": ["file", "key", "quality", "cost", "speedup"],
            "properties": {"file": {"type": "string"}, "key": {"type": "string"}, "quality": {"type": "number"},
                           "cost": {"type": "number"}, "speedup": {"type": "number"}},
        }},
    },
}
GENERATION_SCHEMA = {
    "type": "object", "required": ["generation", "population"],
    "properties": {
        "generation": {"type": "integer", "minimum": 0},
        "summary": {"type": "object"},
        "population": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["key", "quality", "cost_fraction"],
            "properties": {"key": {"type": "string"}, "name": {"type": ["string", "null"]},
                           "quality": {"type": "number"}, "cost_fraction": {"type": "number"}},
        }},
    },
}


def default_strategy(metric: str, rows: int) -> str:
    """A new run's strategy when none is asked for: race where it was measured to reach paper's front for less (a
    metric of per-row scores, at least ``RACE_FROM_ROWS`` calibration rows), else fast (paper's evaluations, shared
    prefixes computed once). Paper is the reproduction, asked for by name."""
    per_row = metric in METRICS and issubclass(METRICS[metric], RowMetric)
    return "race" if per_row and rows >= RACE_FROM_ROWS else "fast"


def speedup_label(cost: str) -> str:
    """What a search's speedups are: predicted by its cost model (MACs or the measured latency model), not timed."""
    return "MAC speedup" if cost == "macs" else "latency-model speedup"


@dataclass
class SearchConfig:
    """Everything that determines a search's result (plus where it runs); every field is checked on creation."""

    model: str = checked(text)
    prompts: list[str] = checked(texts)
    metric: str = checked(text, default="fidelity")
    population: int = checked(whole(2), default=72)
    generations: int = checked(whole(1), default=100)
    images_per_prompt: int = checked(whole(1), default=1)
    num_steps: int = checked(whole(2), default=20)  # step 0 always computes: one step leaves nothing to search
    height: int | None = checked(optional(pixels), default=None)
    width: int | None = checked(optional(pixels), default=None)
    guidance_scale: float = checked(real(0), default=4.5)
    batch_size: int = checked(whole(1), default=8)
    seed: int = checked(whole(0), default=0)
    cost: str = checked(one_of(COSTS), default="macs")
    convention: str = checked(one_of(CONVENTIONS), default="full")
    crossover_points: int = checked(whole(1), default=4)
    crossover_prob: float = checked(real(0, 1), default=0.9)
    mutation_prob: float = checked(real(0, 1), default=0.05)
    device: str = checked(device, default="auto")
    dtype: str = checked(one_of(DTYPES), default="float32")
    cost_model: str = checked(text, default=COST_MODEL)
    strategy: str | None = checked(optional(one_of(STRATEGIES)), default=None)  # None: default_strategy's
    budget: float | None = checked(optional(real(above=0)), default=None)  # image-equivalents; None: no cap
    actions: str = checked(one_of(ACTIONS), default="reuse")
    race_rows: float = checked(real(above=0, maximum=1), default=FIRST_ROWS)  # share of rows raced first
    race_confidence: float = checked(real(0.5, 0.999), default=CONFIDENCE)  # 0.5: compare the first rows' means
    race_first_generation: bool = checked(flag, default=FIRST_GENERATION)  # race generation 0 against itself
    screen: int = checked(whole(1), default=1)  # offspring made per evaluated one, ranked by the surrogate; 1: none

    def __post_init__(self) -> None:
        check_fields(self)
        rows = len(self.prompts) * self.images_per_prompt
        if self.strategy is None:
            self.strategy = default_strategy(self.metric, rows)
        if self.strategy == "race" and rows < 3:
            raise ValueError(f"--strategy race needs at least 3 calibration rows (2 scored first, the rest raced "
                             f"for), this run has {rows} (prompts x images per prompt); add prompts or "
                             "--images-per-prompt, or use --strategy fast.")
        raced = (self.race_rows, self.race_confidence, self.race_first_generation)
        if self.strategy != "race" and raced != (FIRST_ROWS, CONFIDENCE, FIRST_GENERATION):
            raise ValueError(f"--race-rows, --race-confidence and --race-first-generation set how --strategy race "
                             f"races; this run's strategy is {self.strategy}: add --strategy race or leave them out.")
        if self.strategy == "paper" and self.screen > 1:
            raise ValueError("--screen changes which offspring are evaluated, and --strategy paper is the paper's "
                             "search unchanged: use --strategy fast or race with --screen.")

    @property
    def forecast_order(self) -> int | None:
        """The forecast order the search's genes use, or ``None`` for the paper's two actions."""
        return 1 if "forecast" in self.actions else None

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "config.json") -> SearchConfig:
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CorruptRunError(f"{source} is not an ecad search config (format {found!r}, expected "
                                  f"{CONFIG_FORMAT!r}); use another --out.")
        names = {f.name for f in dataclasses.fields(cls)}
        before = {"cost_model": _COST_MODEL_BEFORE, "strategy": "paper"}  # runs from before these were settings
        if data.get("strategy") == "race":
            before |= RACE_BEFORE
        else:  # racing settings mean nothing to another strategy (and earlier defaults were other values)
            names -= set(RACE_BEFORE)
        try:
            return cls(**{**before, **{k: v for k, v in data.items() if k in names}})
        except (TypeError, ValueError) as err:
            raise CorruptRunError(f"{source} is damaged ({err}); restore it or use another --out.") from None


class RunDirectory:
    """Creates, validates and writes a search run directory.

    A new run that fails before its first evaluation is stored leaves nothing behind: :meth:`open` checks everything
    and creates the directory, :meth:`commit` writes ``config.json`` once the model and metric are ready, and
    :meth:`abandon` removes what :meth:`open` created if no evaluation was stored (else the run is resumable).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._starting = False  # a new run, until it is done or stopped
        self._made: Path | None = None  # the topmost directory open() created (None: it existed, empty)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def open(self, config: SearchConfig, resume: bool) -> SearchConfig:
        """Start a new run or check that ``config`` may resume the one here; writes nothing into an existing run."""
        if self.config_path.exists():
            if not resume:
                raise FileExistsError(f"{self.path} already holds a search run; pass --resume to continue it, "
                                      "or choose another --out.")
            stored = self.load_config()
            differences = [
                f"{k}: {getattr(stored, k)!r} -> {getattr(config, k)!r}"
                for k in (f.name for f in dataclasses.fields(SearchConfig))
                if k not in RESUMABLE_CHANGES and getattr(stored, k) != getattr(config, k)
            ]
            if differences:
                raise ValueError(f"cannot resume {self.path}: the run was started with other settings ("
                                 + "; ".join(differences) + "); resume with the original settings or use a new --out.")
            EvaluationStore.check(self.path / "evaluations.sqlite")
            return config
        if self.path.exists() and not self.path.is_dir():
            raise CorruptRunError(f"{self.path} is a file, not a run directory; choose another --out.")
        if self.path.exists() and any(self.path.iterdir()):
            raise CorruptRunError(f"{self.path} is not empty and holds no search run (no config.json); "
                                  "choose an empty or new --out.")
        absolute = self.path.absolute()
        missing = [p for p in (absolute, *absolute.parents) if not p.exists()]
        self._starting, self._made = True, missing[-1] if missing else None
        self.path.mkdir(parents=True, exist_ok=True)
        return config

    def commit(self, config: SearchConfig) -> None:
        """The model and metric are ready: write (or, on resume, update) ``config.json``."""
        (self.path / "generations").mkdir(exist_ok=True)
        write_json(config.to_dict(), self.config_path)

    def abandon(self) -> None:
        """The run stopped: if it is new and stored no evaluation, remove what it created, so the corrected command
        works as the first would; otherwise keep it for ``--resume``."""
        try:
            if not self._starting or EvaluationStore.count(self.path / "evaluations.sqlite"):
                return
        except CorruptRunError:
            return  # keep what cannot be read
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
        else:  # the directory existed, empty: empty it again
            for entry in self.path.iterdir():
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        self._starting = False

    def load_config(self) -> SearchConfig:
        if not self.config_path.is_file():
            raise CorruptRunError(f"{self.path} is not a search run directory (no config.json).")
        data = read_json(self.config_path, error=CorruptRunError, fix="restore it or use another --out")
        return SearchConfig.from_dict(data, str(self.config_path))

    def store(self) -> EvaluationStore:
        return EvaluationStore(self.path / "evaluations.sqlite")

    def write_generation(self, index: int, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        """Write generation ``index``. A resumed run replays its finished generations from the store without
        evaluating anything: the file then keeps the seconds and new evaluations the generation really took."""
        path = self.path / "generations" / f"{index:04d}.json"
        if not summary["new_evaluations"] and path.exists():
            before = self.read_generation(path).get("summary", {})
            summary = {**summary, **{k: before[k] for k in REPLAY_KEEPS if k in before}}
        write_json({"generation": index, "summary": summary, "population": rows}, path)

    def write_front(
        self, front: list[tuple[CacheSchedule, Evaluation]], full_cost: float, cost: str = "macs",
        describe: Callable[[CacheSchedule, Evaluation], CacheSchedule] | None = None,
        no_cache: Evaluation | None = None,
    ) -> list[dict[str, Any]]:
        """Replace the front directory and summary with ``front``, sorted by cost: ``front/000.json`` is the
        cheapest (fastest, lowest quality). ``cost`` names the speedups' kind; ``describe`` adds each file's
        metadata; ``no_cache`` (the uncached schedule's evaluation) goes into the summary as the quality to compare
        with."""
        staging = self.path / "front.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        rows = []
        for i, (schedule, evaluation) in enumerate(sorted(front, key=lambda item: item[1].cost)):
            name = f"{i:03d}.json"
            (describe(schedule, evaluation) if describe else schedule).save(staging / name)
            rows.append({"file": f"front/{name}", "key": evaluation.key, "quality": evaluation.quality,
                         "cost": evaluation.cost, "speedup": full_cost / evaluation.cost, **_results(evaluation)})
        shutil.rmtree(self.path / "front", ignore_errors=True)
        staging.rename(self.path / "front")
        summary: dict[str, Any] = {"full_cost": full_cost, "speedup_kind": speedup_label(cost), "front": rows}
        if no_cache is not None:
            summary["no_cache"] = {"quality": no_cache.quality, "cost": no_cache.cost, **_results(no_cache)}
        write_json(summary, self.path / "front.json")
        return rows

    def read_front(self) -> dict[str, Any]:
        path = self.path / "front.json"
        if not path.is_file():
            raise CorruptRunError(f"{self.path} has no front.json yet; run or resume `ecad search` first.")
        return read_json(path, FRONT_SCHEMA, error=CorruptRunError,
                         fix="resume the search (`ecad search ... --resume`) to write it again")

    def compute_spent(self) -> str:
        """What ``ecad front`` and the report say the run spent: from its last generation file."""
        files = sorted((self.path / "generations").glob("[0-9][0-9][0-9][0-9].json"))
        spent = self.read_generation(files[-1])["summary"].get("compute_spent") if files else None
        if spent is None:
            return "compute spent: not recorded (a run from before ecad counted it)"
        return (f"compute spent: {spent:.1f} image-equivalents in {len(files)} generations (one = one uncached "
                f"image; strategy {self.load_config().strategy})")

    def read_generation(self, path: Path) -> dict[str, Any]:
        return read_json(path, GENERATION_SCHEMA, error=CorruptRunError,
                         fix="resume the search (`ecad search ... --resume`) to write it again")


def _results(evaluation: Evaluation) -> dict[str, Any]:
    """What a front row shows of an evaluation: its scores and costs; the compute spent on it depends on what it
    shared with the candidates around it, so it is counted per generation, not per schedule."""
    return {k: v for k, v in evaluation.metrics.items() if k != "compute" and k not in RACE_FIELDS}


@dataclass
class SearchResult:
    front: list[dict[str, Any]]
    generations: int
    evaluations: int
    hypervolumes: list[float]
    compute_spent: float = 0.0  # image-equivalents, everything the store holds
    stopped: str | None = None  # why the run stopped before config.generations (the budget), else None


def _front_metadata(config: SearchConfig, image_size: tuple[int, int] | None,
                    no_cache: Evaluation | None) -> Callable[[CacheSchedule, Evaluation], CacheSchedule]:
    """What each front file records: the settings it was found under, its score on the calibration rows, its
    MACs and MAC speedup."""
    height, width = image_size or (config.height, config.width)
    settings = GenerationSettings(config.model, config.num_steps, config.guidance_scale, height, width)
    rows = len(config.prompts) * config.images_per_prompt

    def describe(schedule: CacheSchedule, evaluation: Evaluation) -> CacheSchedule:
        scores = {k: v for k, v in evaluation.metrics.items() if k not in NOT_SCORES}
        score = score_record("ecad search", rows, config.metric, evaluation.quality,
                             metric_columns(config.metric, scores), "calibration")
        metadata: dict[str, Any] = {"settings": settings, "score": score}
        if no_cache is not None and "macs" in evaluation.metrics and "macs" in no_cache.metrics:
            metadata["macs"] = mac_record(evaluation.metrics["macs"], no_cache.metrics["macs"], config.convention)
        return annotate(schedule, **metadata)

    return describe


def run_search(
    config: SearchConfig,
    run_dir: RunDirectory,
    layout: ModelLayout,
    executor: Any,
    full_cost: float,
    progress: bool = True,
    image_size: tuple[int, int] | None = None,
) -> SearchResult:
    """Run (or resume) NSGA-II until ``config.generations`` generations are done."""
    encoding = ScheduleEncoding(layout, config.num_steps, config.forecast_order)
    store = run_dir.store()
    seeds = initial_population(layout, config.num_steps, config.population, seed=config.seed,
                               forecast_order=config.forecast_order)
    no_cache_key = schedule_key(seeds[0])  # the first seed is no caching, evaluated in generation 0
    names = {schedule_key(s): s.metadata.get("name") for s in seeds}
    samples = SampleStore(run_dir.path)
    candidates = tqdm(desc="candidates", unit="cand", leave=False, position=1, disable=not progress)
    fresh = {"count": 0, "rejected": 0}

    def on_candidate(evaluation: Evaluation, cached: bool) -> None:
        candidates.set_postfix_str(budget.describe(), refresh=False)
        candidates.update()
        fresh["count"] += 0 if cached else 1
        fresh["rejected"] += int(not cached and evaluation.metrics.get("race") == REJECTED)

    images = len(config.prompts) * config.images_per_prompt  # calibration rows per candidate
    budget = ComputeBudget(config.budget, (evaluation_compute(e, images, full_cost) for e in store.evaluations()))
    _announce(config, images, budget, progress)
    race = (QualityRace(images, first_rows(images, config.race_rows), config.race_confidence,
                        config.race_first_generation, complete=[no_cache_key])
            if config.strategy == "race" else None)
    if race is not None:
        rule = ("its mean there" if config.race_confidence == 0.5
                else f"a paired one-sided {config.race_confidence:g} t bound")
        _say(f"race: each new candidate is scored on the first {len(race.first)} of the {images} calibration rows, the "
             f"rest only if no cheaper front point beats it there ({rule})"
             + ("; the first generation against its own candidates" if config.race_first_generation else ""),
             progress)
    problem = CacheSearchProblem(encoding, store, executor, full_cost, on_candidate, budget, race)
    algorithm = NSGA2(
        pop_size=config.population,
        sampling=np.stack([encoding.encode(s) for s in seeds]),
        crossover=PointCrossover(n_points=config.crossover_points, prob=config.crossover_prob),
        mutation=(ActionMutation(encoding.values, prob=config.mutation_prob, prob_var=1.0 / encoding.n_var)
                  if encoding.forecasts else BitflipMutation(prob=config.mutation_prob, prob_var=1.0 / encoding.n_var)),
        eliminate_duplicates=True,
    )
    surrogate = RidgeSurrogate(encoding.values) if config.screen > 1 else None
    if surrogate is not None:
        algorithm.mating = ScreenedMating(algorithm.mating, surrogate, config.screen)
        _say(f"screen: each generation makes {config.screen}x its offspring and evaluates the {config.population} a "
             "ridge model of the evaluated schedules ranks best", progress)
    algorithm.setup(problem, termination=("n_gen", config.generations), seed=config.seed, verbose=False)
    reference_point: np.ndarray | None = None
    # every schedule evaluated so far: x, F, whether it may be on the front (feasible, scored on every row)
    archive: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
    hypervolumes: list[float] = []
    front_rows: list[dict[str, Any]] = []
    bar = tqdm(total=config.generations, desc="generations", unit="gen", position=0, disable=not progress)
    stopped = None
    try:
        while algorithm.has_next():
            started, fresh["count"], fresh["rejected"] = time.perf_counter(), 0, 0
            if surrogate is not None and archive:  # fitted on what was evaluated before this generation, in order
                surrogate.fit(np.stack([x for x, _, _ in archive.values()]),
                              np.stack([f for _, f, _ in archive.values()]))
            population = algorithm.ask()
            candidates.reset(total=len(population))
            if race is not None:  # decisions against the front as it is now, whatever order candidates finish in
                race.set_front(store.get(k) for k in archive_front(archive))
            try:
                algorithm.evaluator.eval(problem, population)
            except BudgetSpent as spent:
                stopped = (f"{spent}; stopped in generation {len(hypervolumes)}, resume with a larger --budget to "
                           "continue")
                _say(stopped, progress)
                break
            algorithm.tell(infills=population)
            F = population.get("F")
            if reference_point is None:  # fixed after the first generation, so hypervolumes compare
                reference_point = np.array([F[:, 0].max() + 1e-9, 1.0 + 1e-9])
            keys = [schedule_key(encoding.decode(x)) for x in population.get("X")]
            for key, x, f, g in zip(keys, population.get("X"), F, population.get("G")):
                if key not in archive:
                    archive[key] = (x, f, bool(g[0] <= 0) and on_every_row(store.get(key)))
            front_keys = archive_front(archive)
            hv = float(HV(ref_point=reference_point)(np.array([archive[k][1] for k in front_keys]))) if front_keys else 0.0
            hypervolumes.append(hv)
            front = [(encoding.decode(archive[k][0]), store.get(k)) for k in front_keys]
            no_cache = store.get(no_cache_key)
            front_rows = run_dir.write_front(front, full_cost, config.cost, _front_metadata(config, image_size, no_cache),
                                             no_cache)
            samples.retain([*front_keys, *names])
            summary = {
                "front_size": len(front_rows),
                "best_quality": max(r["quality"] for r in front_rows),
                "lowest_cost": min(r["cost"] for r in front_rows),
                "max_speedup": max(r["speedup"] for r in front_rows),
                "hypervolume": hv,
                "new_evaluations": fresh["count"],
                "seconds": time.perf_counter() - started,
                # every schedule evaluated up to this generation, as it was spent (shared prefixes counted once)
                "compute_spent": sum(evaluation_compute(store.get(k), images, full_cost) for k in archive),
            }
            rows = []
            for key, (neg_quality, cost_fraction) in zip(keys, F):
                rows.append({"key": key, "name": names.get(key), "quality": -float(neg_quality),
                             "cost_fraction": float(cost_fraction)})
                evaluation = store.get(key)
                if race is not None and not on_every_row(evaluation):  # its quality is a partial mean
                    rows[-1]["rows_scored"] = evaluation.metrics["rows_scored"]
            if race is not None:
                summary["rejected"] = fresh["rejected"]
            if surrogate is not None and surrogate.fitted:
                summary["screened"] = algorithm.mating.screened
            generation = len(hypervolumes) - 1
            run_dir.write_generation(generation, rows, summary)
            bar.update()
            message = (f"gen {generation}: front {summary['front_size']}, best quality {summary['best_quality']:.4f}, "
                       f"lowest cost {summary['lowest_cost']:.4g} ({summary['max_speedup']:.2f}x "
                       f"{speedup_label(config.cost)}), HV {hv:.4f}, "
                       f"{fresh['count']} new evaluations"
                       + (f" ({fresh['rejected']} rejected after the first rows)" if race is not None else "")
                       + f", {budget.describe()}")
            _say(message, progress)
            if generation == 0 and fresh["count"]:
                _estimate(config, images, budget, progress)
            _plot_front(run_dir, store, front_rows, full_cost, speedup_label(config.cost))
    finally:
        bar.close()
        candidates.close()
        evaluations = len(store)
        store.close()
    return SearchResult(front_rows, len(hypervolumes), evaluations, hypervolumes, budget.spent, stopped)


def _say(message: str, progress: bool) -> None:
    tqdm.write(message) if progress else logger.info(message)


def _announce(config: SearchConfig, rows: int, budget: ComputeBudget, progress: bool) -> None:
    """Before the first candidate: what the configuration costs at most, in image-equivalents."""
    most = config.population * config.generations * rows
    message = (f"compute: at most {most:g} image-equivalents ({config.population} candidates x {config.generations} "
               f"generations x {rows} rows; one = one uncached image; cached candidates, duplicates and shared "
               f"prefixes cost less)")
    if budget.limit is not None:
        message += f"; budget {budget.limit:g}, {budget.spent:.1f} spent so far"
    _say(message, progress)


def _estimate(config: SearchConfig, rows: int, budget: ComputeBudget, progress: bool) -> None:
    """After the first measured candidates: the time the rest will take on this device."""
    rate = budget.seconds_per_image()
    if rate is None:
        return
    left = (budget.limit if budget.limit is not None else config.population * config.generations * rows) - budget.spent
    _say(f"measured {rate:.3g} s per image-equivalent on this device: at most {max(left, 0) * rate / 60:.1f} min for "
         f"the remaining {max(left, 0):.0f} image-equivalents"
         + ("" if budget.limit is not None else " (upper bound: cached candidates cost less)"), progress)


def archive_front(archive: dict[str, tuple[np.ndarray, np.ndarray, bool]]) -> list[str]:
    """Keys of the non-dominated feasible schedules among everything evaluated so far, in evaluation order.

    Not NSGA-II's surviving population: its first front is cut by crowding distance once it outgrows the population,
    which would drop non-dominated schedules from the front the run reports.
    """
    keys = [key for key, (_, _, feasible) in archive.items() if feasible]
    if not keys:
        return []
    nondominated = NonDominatedSorting().do(np.array([archive[k][1] for k in keys]), only_non_dominated_front=True)
    return [keys[i] for i in sorted(nondominated)]


def _plot_front(run_dir: RunDirectory, store: EvaluationStore, front: list[dict[str, Any]], full_cost: float,
                label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = store.db.execute("SELECT quality, cost FROM evaluations").fetchall()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.scatter([full_cost / c for _, c in every], [q for q, _ in every], s=8, c="0.7", label="evaluated")
    ax.plot([r["speedup"] for r in front], [r["quality"] for r in front], "o-", c="tab:red", ms=4, label="front")
    ax.set_xlabel(f"{label} (cost model; no caching = 1)")
    ax.set_ylabel("quality")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = run_dir.path / "front.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(run_dir.path / "front.png")
