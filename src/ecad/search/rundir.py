"""A search run's directory: what it holds, written whole or not at all, and read back by ``ecad front`` and the
report. Nothing is pickled: JSON, SQLite, PNG and safetensors.

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
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..names import metric_columns
from ..runtime.provenance import GenerationSettings, annotate, mac_record, score_record
from ..schedule import CacheSchedule
from ..validation import read_json, write_json
from .config import RESUMABLE_CHANGES, SearchConfig, speedup_label
from .racing import RACE_FIELDS
from .store import CorruptRunError, Evaluation, EvaluationStore

# What a generation file keeps from before when a resumed run replays the generation (it took its time then).
REPLAY_KEEPS = ("seconds", "new_evaluations", "rejected")
# Numbers an evaluation records that are not its score (kept out of score records and front rows' scores).
NOT_SCORES = ("macs", "seconds", "compute", *RACE_FIELDS)

# The shapes of the files `ecad front` and `ecad report` read back.
FRONT_SCHEMA = {
    "type": "object",
    "required": ["full_cost", "front"],
    "properties": {
        "full_cost": {"type": "number", "exclusiveMinimum": 0},
        "front": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["file", "key", "quality", "cost", "speedup"],
                "properties": {
                    "file": {"type": "string"},
                    "key": {"type": "string"},
                    "quality": {"type": "number"},
                    "cost": {"type": "number"},
                    "speedup": {"type": "number"},
                },
            },
        },
    },
}
GENERATION_SCHEMA = {
    "type": "object",
    "required": ["generation", "population"],
    "properties": {
        "generation": {"type": "integer", "minimum": 0},
        "summary": {"type": "object"},
        "population": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["key", "quality", "cost_fraction"],
                "properties": {
                    "key": {"type": "string"},
                    "name": {"type": ["string", "null"]},
                    "quality": {"type": "number"},
                    "cost_fraction": {"type": "number"},
                },
            },
        },
    },
}


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
                raise FileExistsError(
                    f"{self.path} already holds a search run; pass --resume to continue it, or choose another --out."
                )
            stored = self.load_config()
            differences = [
                f"{k}: {getattr(stored, k)!r} -> {getattr(config, k)!r}"
                for k in (f.name for f in dataclasses.fields(SearchConfig))
                if k not in RESUMABLE_CHANGES and getattr(stored, k) != getattr(config, k)
            ]
            if differences:
                raise ValueError(
                    f"cannot resume {self.path}: the run was started with other settings ("
                    + "; ".join(differences)
                    + "); resume with the original settings or use a new --out."
                )
            EvaluationStore.check(self.path / "evaluations.sqlite")
            return config
        if self.path.exists() and not self.path.is_dir():
            raise CorruptRunError(f"{self.path} is a file, not a run directory; choose another --out.")
        if self.path.exists() and any(self.path.iterdir()):
            raise CorruptRunError(
                f"{self.path} is not empty and holds no search run (no config.json); choose an empty or new --out."
            )
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
        self,
        front: list[tuple[CacheSchedule, Evaluation]],
        full_cost: float,
        cost: str = "macs",
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
            rows.append(
                {
                    "file": f"front/{name}",
                    "key": evaluation.key,
                    "quality": evaluation.quality,
                    "cost": evaluation.cost,
                    "speedup": full_cost / evaluation.cost,
                    **_results(evaluation),
                }
            )
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
        return read_json(
            path,
            FRONT_SCHEMA,
            error=CorruptRunError,
            fix="resume the search (`ecad search ... --resume`) to write it again",
        )

    def compute_spent(self) -> str:
        """What ``ecad front`` and the report say the run spent: from its last generation file."""
        files = sorted((self.path / "generations").glob("[0-9][0-9][0-9][0-9].json"))
        spent = self.read_generation(files[-1])["summary"].get("compute_spent") if files else None
        if spent is None:
            return "compute spent: not recorded (a run from before ecad counted it)"
        return (
            f"compute spent: {spent:.1f} image-equivalents in {len(files)} generations (one = one uncached "
            f"image; strategy {self.load_config().strategy})"
        )

    def read_generation(self, path: Path) -> dict[str, Any]:
        return read_json(
            path,
            GENERATION_SCHEMA,
            error=CorruptRunError,
            fix="resume the search (`ecad search ... --resume`) to write it again",
        )


def _results(evaluation: Evaluation) -> dict[str, Any]:
    """What a front row shows of an evaluation: its scores and costs; the compute spent on it depends on what it
    shared with the candidates around it, so it is counted per generation, not per schedule."""
    return {k: v for k, v in evaluation.metrics.items() if k != "compute" and k not in RACE_FIELDS}


def front_metadata(
    config: SearchConfig, image_size: tuple[int, int] | None, no_cache: Evaluation | None
) -> Callable[[CacheSchedule, Evaluation], CacheSchedule]:
    """What each front file records: the settings it was found under, its score on the calibration rows, its
    MACs and MAC speedup."""
    height, width = image_size or (config.height, config.width)
    settings = GenerationSettings(config.model, config.num_steps, config.guidance_scale, height, width)
    rows = len(config.prompts) * config.images_per_prompt

    def describe(schedule: CacheSchedule, evaluation: Evaluation) -> CacheSchedule:
        scores = {k: v for k, v in evaluation.metrics.items() if k not in NOT_SCORES}
        score = score_record(
            "ecad search", rows, config.metric, evaluation.quality, metric_columns(config.metric, scores), "calibration"
        )
        metadata: dict[str, Any] = {"settings": settings, "score": score}
        if no_cache is not None and "macs" in evaluation.metrics and "macs" in no_cache.metrics:
            metadata["macs"] = mac_record(evaluation.metrics["macs"], no_cache.metrics["macs"], config.convention)
        return annotate(schedule, **metadata)

    return describe
