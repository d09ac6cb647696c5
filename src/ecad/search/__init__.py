"""ECAD search: NSGA-II over cache schedules, resumable, with a crash-safe evaluation store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..metrics import QualityMetric
from ..models.loading import check_image_size, resolve_device
from ..schedule import schedule_key
from .config import SearchConfig, speedup_label
from .evaluator import CandidateEvaluator, build_evaluator
from .executors import EXECUTORS, LocalExecutor, make_executor
from .run import SearchResult, run_search
from .rundir import RunDirectory
from .store import CorruptRunError, Evaluation, EvaluationStore, schedule_from_key

__all__ = [
    "EXECUTORS",
    "CandidateEvaluator",
    "CorruptRunError",
    "Evaluation",
    "EvaluationStore",
    "LocalExecutor",
    "RunDirectory",
    "SearchConfig",
    "SearchResult",
    "build_evaluator",
    "make_executor",
    "run_search",
    "schedule_from_key",
    "schedule_key",
    "search",
    "speedup_label",
]

logger = logging.getLogger(__name__)


def search(
    config: SearchConfig,
    out: str | Path,
    resume: bool = False,
    metric: QualityMetric | None = None,
    progress: bool = True,
    executor: str = "local",
    **executor_options: Any,
) -> SearchResult:
    """Run (or, with ``resume``, continue) a search described by ``config`` into the run directory ``out``.

    Everything that can be checked without the model is checked first; a new run that fails or is interrupted
    before its first evaluation is stored leaves no directory behind, so the corrected command works as it is.

    Args:
        config: the search: model, calibration prompts, metric, cost, NSGA-II settings, strategy, budget.
        out: the run directory (config, evaluation store, generations, front files).
        resume: continue the run in ``out``; only ``generations``, ``budget`` and ``device`` may differ.
        metric: a configured metric instance instead of ``config.metric``'s default.
        progress: show progress bars and one summary line per generation.
        executor: ``"local"`` (in this process) or ``"ray"`` (Ray actors; the front is the same).
        **executor_options: for Ray: ``address``, ``workers``, ``gpus_per_worker``, ``cpus_per_worker``.

    Returns:
        A ``SearchResult`` with the front; the run directory holds ``front.json`` and ``front/NNN.json``.

    Example:
        ```python
        config = SearchConfig(model="tiny-shapes", prompts=load_prompts("tiny-shapes", limit=4),
                              metric="tiny-reward", guidance_scale=3.0, population=8, generations=2)
        result = search(config, "runs/tiny")
        ```
    """
    if executor == "local":
        resolve_device(config.device)  # a Ray worker may have the device its driver lacks
    check_image_size(config.model, config.height, config.width)
    run_dir = RunDirectory(out)
    config = run_dir.open(config, resume)
    try:
        runner = make_executor(executor, config, run_dir.path, metric, **executor_options)
        try:
            layout, full_cost = runner.describe()
            run_dir.commit(config)
            logger.info(
                "search: %s, %d prompts x %d images, %d steps, population %d, %d generations -> %s",
                config.model,
                len(config.prompts),
                config.images_per_prompt,
                config.num_steps,
                config.population,
                config.generations,
                run_dir.path,
            )
            return run_search(
                config, run_dir, layout, runner, full_cost, progress=progress, image_size=runner.image_size()
            )
        finally:
            runner.close()
    except BaseException:
        run_dir.abandon()
        raise
