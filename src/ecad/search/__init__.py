"""ECAD search: NSGA-II over cache schedules, resumable, with a crash-safe evaluation store."""

from __future__ import annotations

import logging
from pathlib import Path

from ..generation import Calibration, CalibrationGenerator
from ..hooks import model_layout
from ..loading import load_pipeline
from ..macs import count_macs
from ..metrics import QualityMetric, get_metric
from .evaluator import CandidateEvaluator
from .run import RunDirectory, SearchConfig, SearchResult, run_search
from .store import CorruptRunError, Evaluation, EvaluationStore, schedule_key

__all__ = [
    "CandidateEvaluator", "CorruptRunError", "Evaluation", "EvaluationStore", "RunDirectory", "SearchConfig",
    "SearchResult", "run_search", "schedule_key", "search",
]

logger = logging.getLogger(__name__)


def search(
    config: SearchConfig, out: str | Path, resume: bool = False, metric: QualityMetric | None = None,
    progress: bool = True,
) -> SearchResult:
    """Run (or, with ``resume``, continue) a search described by ``config`` into the run directory ``out``."""
    if config.cost != "macs":
        raise ValueError(f"unknown cost {config.cost!r}; this version searches against 'macs'.")
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
    evaluator = CandidateEvaluator(generator, metric, table, run_dir.path)
    full_cost = float(table.full_step_macs * config.num_steps)
    logger.info("search: %s, %d prompts x %d images, %d steps, population %d, %d generations -> %s",
                config.model, len(config.prompts), config.images_per_prompt, config.num_steps, config.population,
                config.generations, run_dir.path)
    try:
        return run_search(config, run_dir, layout, evaluator, full_cost, progress=progress)
    finally:
        evaluator.close()
