"""ECAD search: NSGA-II over cache schedules, resumable, with a crash-safe evaluation store."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..generation import Calibration, CalibrationGenerator
from ..hooks import model_layout
from ..latency import LatencyTable, measure_latency
from ..loading import load_pipeline
from ..macs import count_macs
from ..metrics import QualityMetric, get_metric
from ..schedule_io import write_json
from .evaluator import CandidateEvaluator
from .run import RunDirectory, SearchConfig, SearchResult, run_search
from .store import CorruptRunError, Evaluation, EvaluationStore, schedule_from_key, schedule_key

__all__ = [
    "CandidateEvaluator", "CorruptRunError", "Evaluation", "EvaluationStore", "RunDirectory", "SearchConfig",
    "SearchResult", "run_search", "schedule_from_key", "schedule_key", "search",
]

logger = logging.getLogger(__name__)

COSTS = ("macs", "latency")


def _latency_table(pipe: Any, generator: CalibrationGenerator, config: SearchConfig, path: Path) -> LatencyTable:
    """Measured once per run and kept, so a resumed run optimises exactly the same costs."""
    if path.is_file():
        try:
            return LatencyTable.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise CorruptRunError(f"{path} is damaged ({err}); delete it to measure again.") from None
    rows = min(config.batch_size, len(generator.prompts)) * (2 if config.guidance_scale > 1 else 1)
    logger.info("measuring per-component latency on %s (batch %d)", generator.pipe.device, rows)
    table = measure_latency(pipe, generator.height, generator.width, batch_size=rows)
    write_json(table.to_dict(), path)
    return table


def search(
    config: SearchConfig, out: str | Path, resume: bool = False, metric: QualityMetric | None = None,
    progress: bool = True,
) -> SearchResult:
    """Run (or, with ``resume``, continue) a search described by ``config`` into the run directory ``out``."""
    if config.cost not in COSTS:
        raise ValueError(f"unknown cost {config.cost!r}; use one of {', '.join(COSTS)}.")
    run_dir = RunDirectory(out)
    config = run_dir.open(config, resume)
    metric = metric or get_metric(config.metric)
    pipe = load_pipeline(config.model, device=config.device, dtype=config.dtype)
    layout = model_layout(pipe)
    calibration = Calibration(
        tuple(config.prompts), config.images_per_prompt, config.num_steps, config.height, config.width,
        config.guidance_scale, config.batch_size, config.seed,
    )
    generator = CalibrationGenerator(pipe, calibration)
    table = count_macs(pipe.transformer, generator.height, generator.width, convention=config.convention)
    latency = None
    full_cost = float(table.full_step_macs * config.num_steps)
    if config.cost == "latency":
        latency = _latency_table(pipe, generator, config, run_dir.path / "latency.json")
        full_cost = latency.full_step_seconds * config.num_steps
    evaluator = CandidateEvaluator(generator, metric, table, run_dir.path, latency)
    logger.info("search: %s, %d prompts x %d images, %d steps, population %d, %d generations -> %s",
                config.model, len(config.prompts), config.images_per_prompt, config.num_steps, config.population,
                config.generations, run_dir.path)
    try:
        return run_search(config, run_dir, layout, evaluator, full_cost, progress=progress)
    finally:
        evaluator.close()
