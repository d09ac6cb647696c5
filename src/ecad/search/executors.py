"""Where candidate schedules are evaluated: in this process, or on Ray actors across GPUs and machines.

An executor turns a batch of schedules into evaluations, yielding each as soon as it is done so the driver stores
it at once. Results do not depend on the executor: each candidate's images come from the same prompts and seeds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..adapters import ModelLayout
from ..metrics import QualityMetric
from ..schedule import CacheSchedule
from .config import SearchConfig
from .evaluator import build_evaluator
from .store import Evaluation

logger = logging.getLogger(__name__)


class LocalExecutor:
    """The default: one pipeline in this process, candidates one after another."""

    def __init__(self, config: SearchConfig, run_path: Path, metric: QualityMetric | None = None) -> None:
        self.evaluator, self.layout, self.full_cost = build_evaluator(config, run_path, metric)

    def describe(self) -> tuple[ModelLayout, float]:
        return self.layout, self.full_cost

    def image_size(self) -> tuple[int, int]:
        """(height, width) the candidates are generated at: the config's, else the model's default."""
        return self.evaluator.generator.height, self.evaluator.generator.width

    def map(self, schedules: list[CacheSchedule], rows: range | None = None) -> Iterator[Evaluation]:
        """Each schedule's evaluation on the calibration rows (``rows``: only those), as each is done."""
        yield from self.evaluator.map(schedules, rows)

    def close(self) -> None:
        self.evaluator.close()


def _ray_executor(*args: Any, **kwargs: Any) -> Any:
    from .ray_executor import RayExecutor

    return RayExecutor(*args, **kwargs)


EXECUTORS = {"local": LocalExecutor, "ray": _ray_executor}


def make_executor(
    name: str, config: SearchConfig, run_path: Path, metric: QualityMetric | None = None, **options: Any
) -> Any:
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}.")
    if name == "local" and options:
        raise ValueError(f"the local executor takes no options, got {sorted(options)}.")
    return EXECUTORS[name](config, run_path, metric, **options)
