"""``evaluate``: schedules and baselines on held-out prompts: images, quality metrics, MACs and measured latency.

Every row (no caching, always included as the reference; ecad's heuristic baselines; other libraries' methods from
:mod:`ecad.peers`; schedule files) generates the same (prompt, seed) rows, the same way: the row's method is applied
to the pipeline, the images are generated while :class:`~.executed.ExecutionCounter` counts what really runs, and
the method is removed. Images and counts are stored per row (see :mod:`.images`), so a second run with the same
``out`` generates only what is missing and recomputes every metric and the compute column from the stored files.
Latency is measured again on every run, in interleaved rounds over all rows, because speedups are only meaningful
against the no-caching time measured in the same process; the timed call is the first scored batch (same prompts,
seeds and batch size), since dynamic methods decide per batch.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..generation import Calibration, CalibrationGenerator
from ..heuristics import no_cache
from ..hooks import enable_cache, model_layout
from ..loading import load_pipeline
from ..macs import count_macs
from ..metrics import QualityMetric, get_metric
from ..peers import Peer, resolve_baseline
from ..schedule import CacheSchedule, ScheduleError
from ..search.store import schedule_key
from .executed import ExecutionCounter
from .images import ImageStore, safe_name
from .results import write_results
from .timing import environment, time_methods

logger = logging.getLogger(__name__)

REFERENCE = "no-cache"


@dataclass
class EvalConfig:
    """What to evaluate, on which prompts, and how to time it."""

    model: str
    prompts: list[str]
    schedules: list[str] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=lambda: ["fidelity"])
    images_per_prompt: int = 1
    num_steps: int | None = None
    height: int | None = None
    width: int | None = None
    guidance_scale: float = 4.5
    batch_size: int = 8
    seed: int = 0
    resample: bool = False
    convention: str = "full"
    warmup: int = 2
    repeats: int = 5
    latency_batch: int | None = None  # images per timed call; default: the first scored batch (batch_size rows)
    device: str = "auto"
    dtype: str = "float32"

    def generation_settings(self, steps: int, height: int, width: int) -> dict[str, Any]:
        """What the stored images depend on (checked when an eval directory is reused)."""
        return {"model": self.model, "num_steps": steps, "height": height, "width": width,
                "guidance_scale": self.guidance_scale, "dtype": self.dtype}


def _unique(name: str, taken: set[str]) -> str:
    base, suffix = safe_name(name), 2
    name = base
    while name in taken:
        name, suffix = f"{base}-{suffix}", suffix + 1
    taken.add(name)
    return name


def _fit_steps(name: str, schedule: CacheSchedule, steps: int, resample: bool) -> CacheSchedule:
    if schedule.num_steps == steps:
        return schedule
    if not resample:
        raise ScheduleError(f"schedule {name} has {schedule.num_steps} steps but the evaluation runs {steps}; "
                            "pass --resample to map it, or --steps to match it.")
    return schedule.resample(steps)


@dataclass
class Candidate:
    """One row of the evaluation: its name, where it came from, its family (for the report's plot) and what runs
    the pipeline: an ecad schedule (through ecad's runtime), a peer method (through its own library), or nothing."""

    name: str
    source: str
    family: str
    method: CacheSchedule | Peer | None

    @property
    def key(self) -> str:
        """What the stored images were made with (a schedule's bits, a peer's spec and library version)."""
        if isinstance(self.method, Peer):
            described = self.method.describe()
            return f"peer:{described['spec']}:{described['library']}-{described['library_version']}"
        return schedule_key(self.method)

    def apply(self, pipe: Any, call: dict[str, Any]) -> AbstractContextManager[Any]:
        if isinstance(self.method, Peer):
            return self.method.apply(pipe, call)
        return nullcontext() if self.family == REFERENCE else enable_cache(pipe, self.method)

    def record(self) -> CacheSchedule | dict[str, Any]:
        return self.method.describe() if isinstance(self.method, Peer) else self.method


def _candidates(config: EvalConfig, layout: Any, steps: int,
                files: list[tuple[str, CacheSchedule]]) -> list[Candidate]:
    """No caching first (the reference), then the baselines in the order given, then the schedule files."""
    taken = {REFERENCE}
    candidates = [Candidate(REFERENCE, "no caching", REFERENCE, no_cache(layout, steps))]
    for spec in config.baselines:
        if spec == REFERENCE:
            continue
        for method in resolve_baseline(layout, steps, spec):
            if isinstance(method, Peer):
                name, source, family = method.name, f"{method.library} {method.spec}", method.family
            else:
                name, source, family = method.metadata["name"], f"baseline {spec}", spec.partition(":")[0]
            candidates.append(Candidate(_unique(name, taken), source, family, method))
    for file, schedule in files:
        path = Path(file)
        name = _unique(f"{path.parent.name}-{path.stem}" if path.stem.isdigit() else path.stem, taken)
        schedule = _fit_steps(name, schedule, steps, config.resample)
        layout.check(schedule, config.model)
        candidates.append(Candidate(name, file, "ecad", schedule))
    return candidates


def _timed_rows(rows: list[tuple[str, int]], count: int) -> tuple[list[str], list[int]]:
    """The prompts and seeds of the timed call: the first ``count`` rows, as the first scored batch has them."""
    picked = [rows[i % len(rows)] for i in range(count)]
    return [p for p, _ in picked], [s for _, s in picked]


def _metric_instances(config: EvalConfig, metrics: dict[str, QualityMetric] | None) -> dict[str, QualityMetric]:
    given = dict(metrics or {})
    return {name: given.pop(name) if name in given else get_metric(name) for name in config.metrics} | given


def evaluate(config: EvalConfig, out: str | Path, metrics: dict[str, QualityMetric] | None = None,
             progress: bool = True, max_new: int | None = None) -> dict[str, Any] | None:
    """Run the evaluation into ``out``; ``metrics`` may supply configured instances (e.g. FID with a feature module).

    Returns what ``results.json`` holds. With ``max_new``, stops after generating that many rows and returns None
    (a long evaluation on a shared machine then runs in pieces; the next call continues).
    """
    if not config.prompts:
        raise ValueError("no prompts to evaluate on.")
    files = [(file, CacheSchedule.load(file)) for file in config.schedules]
    instances = _metric_instances(config, metrics)
    pipe = load_pipeline(config.model, device=config.device, dtype=config.dtype)
    layout = model_layout(pipe)
    steps = config.num_steps or (files[0][1].num_steps if files else 20)
    candidates = _candidates(config, layout, steps, files)

    calibration = Calibration.of(config, num_steps=steps)
    generator = CalibrationGenerator(pipe, calibration)
    latency_batch = config.latency_batch or min(config.batch_size, len(calibration.rows))
    prompts, seeds = _timed_rows(calibration.rows, latency_batch)
    call = dict(prompt=prompts, num_inference_steps=steps, guidance_scale=config.guidance_scale,
                height=generator.height, width=generator.width, **generator.adapter.call_kwargs)
    store = ImageStore(out)
    store.open(config.generation_settings(steps, generator.height, generator.width), calibration.rows)
    new = 0
    with ExecutionCounter(pipe, steps) as counter:
        for candidate in tqdm(candidates, desc="schedules", disable=not progress):
            if store.has(candidate.name, candidate.key):
                logger.info("%s: images already in %s, not generating again", candidate.name, store.path)
                continue
            if max_new is not None and new >= max_new:
                logger.info("generated %d new rows (max_new); call again to continue", new)
                return None
            new += 1
            logger.info("%s: generating %d images", candidate.name, len(calibration.rows))
            with candidate.apply(pipe, call):
                counter.start()  # after applying: a method's calibration run is not part of its cost
                generated = generator(None, progress=progress)
            store.save(candidate.name, candidate.key, candidate.record(), generated, counter.result(len(generated.images)))

    for metric in instances.values():
        if metric.needs_reference:
            metric.prepare(store.load(REFERENCE))
    table = count_macs(pipe.transformer, generator.height, generator.width, convention=config.convention)
    results = []
    for candidate in tqdm(candidates, desc="metrics", disable=not progress):
        executed = store.executed(candidate.name)
        images = store.load(candidate.name)
        results.append({
            "name": candidate.name, "source": candidate.source, "family": candidate.family, "key": candidate.key,
            "recompute_fraction": executed.recompute_fraction(layout.exists),
            "macs": executed.macs(table),
            "metrics": {metric_name: metric(images) for metric_name, metric in instances.items()},
        })
    for row in results:
        row["macs_speedup"] = results[0]["macs"] / row["macs"]
    if config.repeats > 0:
        timings = time_methods(pipe, call, {c.name: partial(c.apply, pipe, call) for c in candidates}, seeds=seeds,
                               warmup=config.warmup, repeats=config.repeats, progress=progress)
        reference = timings[REFERENCE]
        for row in results:
            timing = timings[row["name"]]
            row["latency"] = timing.to_dict()
            row["speedup"] = reference.median_s / timing.median_s
            row["transformer_speedup"] = reference.transformer_median_s / timing.transformer_median_s
    report = {
        "format": "ecad.eval-results/1",
        "config": asdict(config),
        "num_steps": steps, "height": generator.height, "width": generator.width,
        "images": len(calibration.rows), "convention": config.convention,
        "environment": {**environment(pipe.device), "latency_batch_size": latency_batch,
                        "warmup": config.warmup, "repeats": config.repeats},
        "results": results,
    }
    write_results(report, Path(out))
    return report
