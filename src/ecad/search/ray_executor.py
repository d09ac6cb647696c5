"""Candidate evaluation on Ray: one long-lived actor per GPU (or CPU slot), scheduled dynamically.

Each actor loads the pipeline and the metric once. The driver keeps every actor busy with one candidate at a time
and hands the next candidate to whichever finishes first, so a slow worker never stalls a generation. An actor
that dies mid-candidate has its candidate re-queued for the others; the driver stores results as they arrive, so
nothing is lost and nothing is counted twice. The run directory must be on a file system every worker can read
(the uncached reference images and the latency table are written there once, by the first worker).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..adapters import ModelLayout
from ..metrics import QualityMetric
from ..schedule import CacheSchedule
from .config import SearchConfig
from .store import Evaluation

logger = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("--executor ray needs Ray: pip install 'ecad[ray]'") from None
    return ray


class EvaluationWorker:
    """The actor: a pipeline, calibration set and metric, evaluating one schedule per call. Creating it only starts
    its process; :meth:`setup` loads the model, so every worker's process starts while the first one loads."""

    def __init__(self, config: dict[str, Any], run_path: str, threads: int | None) -> None:
        self.config, self.run_path, self.threads = config, run_path, threads

    def setup(self) -> tuple[ModelLayout, float]:
        """Load the pipeline, calibration set and metric; the layout and the no-cache cost."""
        import torch

        from .evaluator import build_evaluator

        if self.threads:
            torch.set_num_threads(self.threads)
        self.evaluator, self.layout, self.full_cost = build_evaluator(SearchConfig(**self.config), Path(self.run_path))
        return self.layout, self.full_cost

    def image_size(self) -> tuple[int, int]:
        return self.evaluator.generator.height, self.evaluator.generator.width

    def pid(self) -> int:
        return os.getpid()

    def evaluate(self, schedule: dict[str, Any], rows: range | None = None) -> dict[str, Any]:
        evaluation = self.evaluator(CacheSchedule.from_dict(schedule), rows)
        return dataclasses.asdict(evaluation)


class RayExecutor:
    """``--executor ray``: starts (or joins, with ``address``) a Ray cluster and one actor per slot."""

    def __init__(
        self,
        config: SearchConfig,
        run_path: Path,
        metric: QualityMetric | None = None,
        *,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float | None = None,
        cpus_per_worker: float = 1.0,
    ) -> None:
        if metric is not None:
            raise ValueError(
                "the ray executor builds the metric on each worker from config.metric; "
                "pass a metric object only with the local executor."
            )
        ray = self.ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0.0)
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if gpus else 0.0
        if workers is None:
            workers = (
                int(gpus // gpus_per_worker) if gpus_per_worker else int(resources.get("CPU", 1) // cpus_per_worker)
            )
        if workers < 1:
            raise ValueError(
                f"the Ray cluster ({resources}) has no room for a worker with {gpus_per_worker} GPU(s) "
                f"and {cpus_per_worker} CPU(s)."
            )
        device = "cuda" if gpus_per_worker else "cpu"
        options = {**dataclasses.asdict(config), "device": device if config.device == "auto" else config.device}
        actor = ray.remote(num_gpus=gpus_per_worker, num_cpus=cpus_per_worker)(EvaluationWorker)
        threads = max(1, int(cpus_per_worker))
        # Every worker's process starts at once; the first one loads first and writes the shared reference images /
        # latency table before the others load and read them.
        self.workers = [actor.remote(options, str(run_path), threads) for _ in range(workers)]
        self.layout, self.full_cost = ray.get(self.workers[0].setup.remote())
        self.size = ray.get(self.workers[0].image_size.remote())
        ray.get([w.setup.remote() for w in self.workers[1:]])
        logger.info("ray executor: %d workers (%s GPU, %s CPU each)", workers, gpus_per_worker, cpus_per_worker)

    def describe(self) -> tuple[ModelLayout, float]:
        return self.layout, self.full_cost

    def image_size(self) -> tuple[int, int]:
        return self.size

    def map(self, schedules: list[CacheSchedule], rows: range | None = None) -> Iterator[Evaluation]:
        """Each schedule's evaluation (on ``rows`` only, if given), in the order the workers finish."""
        ray = self.ray
        queue = deque(schedules)
        idle = list(self.workers)
        running: dict[Any, tuple[Any, CacheSchedule]] = {}
        while queue or running:
            while queue and idle:
                worker, schedule = idle.pop(), queue.popleft()
                running[worker.evaluate.remote(schedule.to_dict(), rows)] = (worker, schedule)
            if not running:
                raise RuntimeError("every Ray worker has died; the finished candidates are stored, resume the run.")
            (done,), _ = ray.wait(list(running), num_returns=1)
            worker, schedule = running.pop(done)
            try:
                result = ray.get(done)
            except ray.exceptions.RayActorError:
                logger.warning("a Ray worker died; its candidate goes to another worker")
                self.workers.remove(worker)
                queue.append(schedule)
                continue
            idle.append(worker)
            yield Evaluation(**result)

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        self.workers = []
