"""``evaluate``: schedules and baselines on held-out prompts: images, quality metrics, MACs and measured latency.

Every row (no caching, always included as the reference; ecad's heuristic baselines; other libraries' methods from
:mod:`ecad.peers`; schedule files) generates the same (prompt, seed) rows, the same way: the row's method is applied
to the pipeline, the images are generated while :class:`~.executed.ExecutionCounter` counts what really runs, and
the method is removed. Images and counts are stored per row (see :mod:`.images`), so a second run with the same
``out`` generates only what is missing and recomputes every metric and the compute column from the stored files.
Latency is measured again on every run, in interleaved rounds over all rows, because speedups are only meaningful
against the no-caching time measured in the same process; the timed call is the first scored batch (same prompts,
seeds and batch size), since dynamic methods decide per batch. A run with ``repeats=0`` keeps the latencies an
earlier run of the same directory measured, for the rows whose method did not change.

Steps, guidance and size not given default to the first schedule file's recorded settings (see
:mod:`ecad.runtime.provenance`); every schedule whose recorded settings differ from the evaluation's is warned about,
and every stored schedule file records the evaluation's settings, scores, MACs and measured speedup.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..adapters.layout import model_layout
from ..generation import Calibration, CalibrationGenerator
from ..metrics import QualityMetric, get_metric
from ..models.loading import call_default, check_image_size, load_pipeline, pipeline_call_kwargs
from ..names import COMPILE_SCOPES, CONVENTIONS, DTYPE_NAMES, metric_columns
from ..peers import Peer, check_baseline, resolve_baseline
from ..runtime.cache import enable_cache
from ..runtime.compilation import CompileConfig, compile_config, compiled
from ..runtime.provenance import GenerationSettings, annotate, mac_record, score_record, warn_differences
from ..schedule import CacheSchedule, ScheduleError, schedule_key
from ..schedule.heuristics import no_cache
from ..validation import (
    check_fields,
    checked,
    compile_backend,
    device,
    each,
    flag,
    one_of,
    optional,
    pixels,
    real,
    text,
    texts,
    whole,
)
from .executed import ExecutionCounter
from .images import ImageStore, safe_name
from .results import write_results
from .timing import environment, time_methods

logger = logging.getLogger(__name__)

REFERENCE = "no-cache"


def _baseline_spec(spec: Any) -> str:
    check_baseline(text(spec))
    return spec


def _path(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"must be file paths, got {value!r}")
    return str(value)


@dataclass
class EvalConfig:
    """What to evaluate, on which prompts, and how to time it; every field is checked on creation."""

    model: str = checked(text)
    prompts: list[str] = checked(texts)
    schedules: list[str] = checked(each(_path), default_factory=list)
    baselines: list[str] = checked(each(_baseline_spec), default_factory=list)
    metrics: list[str] = checked(texts, default_factory=lambda: ["fidelity"])
    images_per_prompt: int = checked(whole(1), default=1)
    num_steps: int | None = checked(optional(whole(1)), default=None)
    height: int | None = checked(optional(pixels), default=None)
    width: int | None = checked(optional(pixels), default=None)
    guidance_scale: float | None = checked(
        optional(real(0)), default=None
    )  # None: the first schedule's, else the pipeline's
    batch_size: int = checked(whole(1), default=8)
    seed: int = checked(whole(0), default=0)
    resample: bool = checked(flag, default=False)
    convention: str = checked(one_of(CONVENTIONS), default="full")
    warmup: int = checked(whole(0), default=2)
    repeats: int = checked(whole(0), default=5)
    # images per timed call; None: the first scored batch (batch_size rows), since dynamic methods decide per batch
    latency_batch: int | None = checked(optional(whole(1)), default=None)
    device: str = checked(device, default="auto")
    dtype: str = checked(one_of(DTYPE_NAMES), default="float32")
    compile: str | None = checked(optional(one_of(COMPILE_SCOPES)), default=None)  # timed compiled; None: eager
    compile_backend: str | None = checked(optional(compile_backend), default=None)  # None: inductor (with compile)

    def __post_init__(self) -> None:
        check_fields(self)
        compile_config(self.compile, self.compile_backend)  # refuses a backend without a scope

    @property
    def compiled(self) -> CompileConfig | None:
        """How the timed calls compile the transformer (``None``: eager)."""
        return compile_config(self.compile, self.compile_backend)

    def generation_settings(self, steps: int, height: int, width: int) -> dict[str, Any]:
        """What the stored images depend on (checked when an eval directory is reused)."""
        return {
            "model": self.model,
            "num_steps": steps,
            "height": height,
            "width": width,
            "guidance_scale": self.guidance_scale,
            "dtype": self.dtype,
        }


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
        raise ScheduleError(
            f"schedule {name} has {schedule.num_steps} steps but the evaluation runs {steps}; "
            "pass --resample to map it, or --steps to match it."
        )
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


def _candidates(config: EvalConfig, layout: Any, steps: int, files: list[tuple[str, CacheSchedule]]) -> list[Candidate]:
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


def _recorded_defaults(config: EvalConfig, files: list[tuple[str, CacheSchedule]], pipe: Any) -> EvalConfig:
    """Guidance and size not given: the first schedule file's recorded ones, else the pipeline's defaults."""
    found = next((s for s in (GenerationSettings.of(schedule) for _, schedule in files) if s), GenerationSettings())
    guidance = config.guidance_scale
    if guidance is None:
        guidance = found.guidance_scale or call_default(pipe, "guidance_scale") or Calibration.guidance_scale
    return replace(
        config, guidance_scale=float(guidance), height=config.height or found.height, width=config.width or found.width
    )


def _earlier_latency(out: Path, results: list[dict[str, Any]], compiled: str) -> dict[str, Any] | None:
    """With ``repeats=0``: the latencies an earlier run of ``out`` measured compiled the same way (``compiled``: as
    the environment records it), put on the rows whose schedule is unchanged (speedups stay against that run's no
    caching); returns that run's environment, or None."""
    path = out / "results.json"
    if not path.is_file():
        return None
    try:
        earlier = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if earlier.get("environment", {}).get("compiled", "eager") != compiled:
        logger.info(
            "latency: %s was timed %s, this run asks for %s: not reused",
            path,
            earlier["environment"].get("compiled", "eager"),
            compiled,
        )
        return None
    timed = {row["key"]: row for row in earlier.get("results", []) if "latency" in row}
    reference = timed.get(results[0]["key"])
    if reference is None:
        return None
    for row in results:
        if row["key"] in timed:
            row["latency"] = timed[row["key"]]["latency"]
    return {**earlier["environment"], "latency_from_earlier_run": True}


def _add_speedups(results: list[dict[str, Any]]) -> None:
    """Measured speedups against no caching (the first row), for every row with a latency."""
    reference = results[0]["latency"]
    for row in results:
        if "latency" in row:
            row["speedup"] = reference["median_s"] / row["latency"]["median_s"]
            row["transformer_speedup"] = reference["transformer_median_s"] / row["latency"]["transformer_median_s"]


def _record(
    schedule: CacheSchedule,
    row: dict[str, Any],
    settings: GenerationSettings,
    rows: int,
    full_macs: float,
    convention: str,
    device: str,
) -> CacheSchedule:
    """The schedule file an evaluation keeps: its settings, scores, MACs and measured speedup."""
    numbers = {
        column: value
        for name, scores in row["metrics"].items()
        for column, value in metric_columns(name, scores).items()
    }
    metadata: dict[str, Any] = {
        "settings": settings,
        "score": score_record("ecad eval", rows, numbers=numbers),
        "macs": mac_record(row["macs"], full_macs, convention),
    }
    if "speedup" in row:
        metadata["measured"] = {"speedup": row["speedup"], "median_s": row["latency"]["median_s"], "device": device}
    return annotate(schedule, **metadata)


def _metric_instances(config: EvalConfig, metrics: dict[str, QualityMetric] | None) -> dict[str, QualityMetric]:
    given = dict(metrics or {})
    return {name: given.pop(name) if name in given else get_metric(name) for name in config.metrics} | given


def _announce_timing(methods: int, config: EvalConfig, batch: int, seconds_per_image: float | None) -> None:
    """Before latency timing: what it costs (it can take longer than generating the images) and how to skip it."""
    calls = methods * (config.warmup + config.repeats)
    cost = (
        f"{calls} pipeline calls of {batch} image(s) ({methods} methods x {config.warmup} warm-up + "
        f"{config.repeats} timed rounds)"
    )
    if seconds_per_image is not None:
        cost += f", about {calls * batch * seconds_per_image / 60:.1f} min at this run's generation speed"
    logger.info("latency: %s; --repeats 0 skips timing (and keeps latencies an earlier run of --out measured)", cost)


def evaluate(
    config: EvalConfig,
    out: str | Path,
    metrics: dict[str, QualityMetric] | None = None,
    progress: bool = True,
    max_new: int | None = None,
) -> dict[str, Any] | None:
    """Evaluate schedules, baselines and no caching on the same rows: what ``ecad eval`` runs.

    Args:
        config: what to evaluate and how (model, schedules, baselines, prompts, metrics, timing).
        out: the eval directory; an existing one of the same settings is continued (only missing rows generated).
        metrics: configured metric instances by name, replacing the defaults (e.g. FID with a feature module).
        progress: show progress bars.
        max_new: stop after generating that many new rows (a long evaluation then runs in pieces).

    Returns:
        What ``results.json`` holds (one row per schedule: metrics, executed MACs, latency, speedups), or None
        when ``max_new`` stopped it early.

    Example:
        ```python
        config = EvalConfig(model="tiny-shapes", schedules=["my_schedule.json"], baselines=["fora:2"],
                            prompts=load_prompts("tiny-shapes-heldout", limit=8), metrics=["tiny-reward"])
        results = evaluate(config, "my-eval")
        ```
    """
    files = [(file, CacheSchedule.load(file)) for file in config.schedules]
    instances = _metric_instances(config, metrics)
    check_image_size(config.model, config.height, config.width)
    ImageStore(out).check()
    pipe = load_pipeline(config.model, device=config.device, dtype=config.dtype)
    config = _recorded_defaults(config, files, pipe)
    layout = model_layout(pipe)
    steps = config.num_steps or (files[0][1].num_steps if files else 20)
    candidates = _candidates(config, layout, steps, files)

    calibration = Calibration.of(config, num_steps=steps)
    generator = CalibrationGenerator(pipe, calibration)
    latency_batch = config.latency_batch or min(config.batch_size, len(calibration.rows))
    prompts, seeds = _timed_rows(calibration.rows, latency_batch)
    call = dict(
        prompt=prompts,
        num_inference_steps=steps,
        guidance_scale=config.guidance_scale,
        height=generator.height,
        width=generator.width,
        **pipeline_call_kwargs(pipe),
    )
    settings = GenerationSettings(config.model, steps, config.guidance_scale, generator.height, generator.width)
    for file, schedule in files:
        warn_differences(schedule, settings, f"ecad eval {file}")
    store = ImageStore(out)
    store.open(config.generation_settings(steps, generator.height, generator.width), calibration.rows)
    new, generating = 0, 0.0  # rows generated now, and the seconds they took (for the latency estimate)
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
                start = time.perf_counter()
                generated = generator(None, progress=progress)
                generating += time.perf_counter() - start
            store.save(
                candidate.name, candidate.key, candidate.record(), generated, counter.result(len(generated.images))
            )

    for metric in instances.values():
        if metric.needs_reference:
            metric.prepare(store.load(REFERENCE))
    table = generator.cost_table(config.convention)
    results = []
    for candidate in tqdm(candidates, desc="metrics", disable=not progress):
        executed = store.executed(candidate.name)
        images = store.load(candidate.name)
        results.append(
            {
                "name": candidate.name,
                "source": candidate.source,
                "family": candidate.family,
                "key": candidate.key,
                "recompute_fraction": executed.recompute_fraction(layout.exists),
                "macs": executed.macs(table),
                "metrics": {metric_name: metric(images) for metric_name, metric in instances.items()},
            }
        )
    for row in results:
        row["macs_speedup"] = results[0]["macs"] / row["macs"]
    compile = config.compiled
    env = {
        **environment(pipe.device),
        "latency_batch_size": latency_batch,
        "warmup": config.warmup,
        "repeats": config.repeats,
        "compiled": "eager" if compile is None else compile.label,
    }
    if config.repeats > 0:
        rate = generating / (new * len(calibration.rows)) if new else None  # seconds per image
        _announce_timing(len(candidates), config, latency_batch, rate)
        methods = {c.name: partial(c.apply, pipe, call) for c in candidates}
        with compiled(pipe, compile) if compile is not None else nullcontext():
            timings = time_methods(
                pipe, call, methods, seeds=seeds, warmup=config.warmup, repeats=config.repeats, progress=progress
            )
        for row in results:
            row["latency"] = timings[row["name"]].to_dict()
    else:
        env = _earlier_latency(Path(out), results, env["compiled"]) or env
    if "latency" in results[0]:
        _add_speedups(results)
    for candidate, row in zip(candidates, results, strict=True):
        if isinstance(candidate.method, CacheSchedule):
            store.write_schedule(
                candidate.name,
                _record(
                    candidate.method,
                    row,
                    settings,
                    len(calibration.rows),
                    results[0]["macs"],
                    config.convention,
                    env["device_name"],
                ),
            )
    report = {
        "format": "ecad.eval-results/1",
        "config": asdict(config),
        "num_steps": steps,
        "height": generator.height,
        "width": generator.width,
        "images": len(calibration.rows),
        "convention": config.convention,
        "macs_counted": table.counted,
        "macs_per": f"image (transformer batch {table.batch_size}, {table.calls_per_step} call(s) per step)",
        "environment": env,
        "results": results,
    }
    write_results(report, Path(out))
    return report
