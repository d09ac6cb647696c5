"""``evaluate``: schedules and baselines on held-out prompts: images, quality metrics, MACs and measured latency.

Every schedule (and no caching, always included as the reference) generates the same (prompt, seed) rows; images
are stored per schedule (see :mod:`.images`), so a second run with the same ``out`` generates only what is missing
and recomputes every metric from the stored files. Latency is measured again on every run, because speedups are
only meaningful against the no-caching time measured in the same process; a run with ``repeats=0`` keeps the
latencies an earlier run of the same directory measured, for the schedules whose bits did not change.

Steps, guidance and size not given default to the first schedule file's recorded settings (see
:mod:`ecad.provenance`); every schedule whose recorded settings differ from the evaluation's is warned about, and
every stored schedule file records the evaluation's settings, scores, MACs and measured speedup.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..generation import Calibration, CalibrationGenerator
from ..heuristics import baseline, no_cache, parse_baseline
from ..hooks import enable_cache, model_layout
from ..loading import DTYPES, call_default, check_image_size, load_pipeline, pipeline_call_kwargs
from ..macs import CONVENTIONS
from ..metrics import QualityMetric, get_metric
from ..names import metric_columns
from ..provenance import GenerationSettings, annotate, mac_record, score_record, warn_differences
from ..schedule import CacheSchedule, ScheduleError
from ..search.store import schedule_key
from ..validation import check_fields, checked, device, each, flag, one_of, optional, pixels, real, text, texts, whole
from .images import ImageStore, safe_name
from .results import write_results
from .timing import environment, time_pipeline

logger = logging.getLogger(__name__)

REFERENCE = "no-cache"


def _baseline_spec(spec: Any) -> str:
    parse_baseline(text(spec))
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
    guidance_scale: float | None = checked(optional(real(0)), default=None)  # None: the first schedule's, else the pipeline's
    batch_size: int = checked(whole(1), default=8)
    seed: int = checked(whole(0), default=0)
    resample: bool = checked(flag, default=False)
    convention: str = checked(one_of(CONVENTIONS), default="full")
    warmup: int = checked(whole(0), default=2)
    repeats: int = checked(whole(0), default=5)
    latency_batch: int = checked(whole(1), default=1)
    device: str = checked(device, default="auto")
    dtype: str = checked(one_of(DTYPES), default="float32")

    def __post_init__(self) -> None:
        check_fields(self)

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


def _recorded_defaults(config: EvalConfig, files: list[tuple[str, CacheSchedule]], pipe: Any) -> EvalConfig:
    """Guidance and size not given: the first schedule file's recorded ones, else the pipeline's defaults."""
    found = next((s for s in (GenerationSettings.of(schedule) for _, schedule in files) if s), GenerationSettings())
    guidance = config.guidance_scale
    if guidance is None:
        guidance = found.guidance_scale or call_default(pipe, "guidance_scale") or Calibration.guidance_scale
    return replace(config, guidance_scale=float(guidance), height=config.height or found.height,
                   width=config.width or found.width)


def _earlier_latency(out: Path, results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """With ``repeats=0``: the latencies an earlier run of ``out`` measured, put on the rows whose schedule is
    unchanged (speedups stay against that run's no caching); returns that run's environment, or None."""
    path = out / "results.json"
    if not path.is_file():
        return None
    try:
        earlier = json.loads(path.read_text())
    except json.JSONDecodeError:
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


def _record(schedule: CacheSchedule, row: dict[str, Any], settings: GenerationSettings, rows: int,
            full_macs: float, convention: str, device: str) -> CacheSchedule:
    """The schedule file an evaluation keeps: its settings, scores, MACs and measured speedup."""
    numbers = {column: value for name, scores in row["metrics"].items()
               for column, value in metric_columns(name, scores).items()}
    metadata: dict[str, Any] = {"settings": settings, "score": score_record("ecad eval", rows, numbers=numbers),
                                "macs": mac_record(row["macs"], full_macs, convention)}
    if "speedup" in row:
        metadata["measured"] = {"speedup": row["speedup"], "median_s": row["latency"]["median_s"], "device": device}
    return annotate(schedule, **metadata)


def _metric_instances(config: EvalConfig, metrics: dict[str, QualityMetric] | None) -> dict[str, QualityMetric]:
    given = dict(metrics or {})
    return {name: given.pop(name) if name in given else get_metric(name) for name in config.metrics} | given


def evaluate(config: EvalConfig, out: str | Path, metrics: dict[str, QualityMetric] | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Run the evaluation into ``out``; ``metrics`` may supply configured instances (e.g. FID with a feature module).

    Returns what ``results.json`` holds.
    """
    files = [(file, CacheSchedule.load(file)) for file in config.schedules]
    instances = _metric_instances(config, metrics)
    check_image_size(config.model, config.height, config.width)
    ImageStore(out).check()
    pipe = load_pipeline(config.model, device=config.device, dtype=config.dtype)
    config = _recorded_defaults(config, files, pipe)
    layout = model_layout(pipe)
    steps = config.num_steps or (files[0][1].num_steps if files else 20)
    taken = {REFERENCE}
    candidates: list[tuple[str, str, CacheSchedule]] = [(REFERENCE, "no caching", no_cache(layout, steps))]
    for spec in config.baselines:
        if spec != REFERENCE:
            schedule = baseline(layout, steps, spec)
            candidates.append((_unique(schedule.metadata["name"], taken), f"baseline {spec}", schedule))
    for file, schedule in files:
        path = Path(file)
        name = _unique(f"{path.parent.name}-{path.stem}" if path.stem.isdigit() else path.stem, taken)
        schedule = _fit_steps(name, schedule, steps, config.resample)
        layout.check(schedule, config.model)
        candidates.append((name, file, schedule))

    calibration = Calibration.of(config, num_steps=steps)
    generator = CalibrationGenerator(pipe, calibration)
    settings = GenerationSettings(config.model, steps, config.guidance_scale, generator.height, generator.width)
    for file, schedule in files:
        warn_differences(schedule, settings, f"ecad eval {file}")
    store = ImageStore(out)
    store.open(config.generation_settings(steps, generator.height, generator.width), calibration.rows)
    try:
        for name, _, schedule in tqdm(candidates, desc="schedules", disable=not progress):
            key = schedule_key(schedule)
            if store.has(name, key):
                logger.info("%s: images already in %s, not generating again", name, store.path)
                continue
            logger.info("%s: generating %d images", name, len(calibration.rows))
            store.save(name, key, schedule, generator(None if name == REFERENCE else schedule, progress=progress))
    finally:
        generator.close()

    for metric in instances.values():
        if metric.needs_reference:
            metric.prepare(store.load(REFERENCE))
    table = generator.cost_table(config.convention)
    full_macs = float(table.schedule_macs(candidates[0][2]))
    call = dict(prompt=[config.prompts[0]] * config.latency_batch, num_inference_steps=steps,
                guidance_scale=config.guidance_scale, height=generator.height, width=generator.width,
                seed=config.seed, **pipeline_call_kwargs(pipe))
    results = []
    for name, source, schedule in tqdm(candidates, desc="metrics and latency", disable=not progress):
        images = store.load(name)
        row: dict[str, Any] = {
            "name": name, "source": source, "key": schedule_key(schedule),
            "recompute_fraction": schedule.stats()["recompute_fraction"],
            "macs": float(table.schedule_macs(schedule)),
            "metrics": {metric_name: metric(images) for metric_name, metric in instances.items()},
        }
        row["macs_speedup"] = full_macs / row["macs"]
        if config.repeats > 0:
            with enable_cache(pipe, schedule) if name != REFERENCE else nullcontext():
                timing = time_pipeline(pipe, dict(call), warmup=config.warmup, repeats=config.repeats,
                                       batch_size=config.latency_batch)
            row["latency"] = timing.to_dict()
        results.append(row)
    env = {**environment(pipe.device), "latency_batch_size": config.latency_batch, "warmup": config.warmup,
           "repeats": config.repeats}
    if config.repeats == 0:
        env = _earlier_latency(Path(out), results) or env
    if "latency" in results[0]:
        _add_speedups(results)
    for (name, _, schedule), row in zip(candidates, results):
        store.write_schedule(name, _record(schedule, row, settings, len(calibration.rows), full_macs,
                                           config.convention, env["device_name"]))
    report = {
        "format": "ecad.eval-results/1",
        "config": asdict(config),
        "num_steps": steps, "height": generator.height, "width": generator.width,
        "images": len(calibration.rows), "convention": config.convention, "macs_counted": table.counted,
        "macs_per": f"image (transformer batch {table.batch_size}, {table.calls_per_step} call(s) per step)",
        "environment": env,
        "results": results,
    }
    write_results(report, Path(out))
    return report
