"""A short NSGA-II search over a model the tests drive by hand (a bare transformer's loop, a video pipeline), with a
stand-in quality: the relative error of the cached output against the uncached one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ecad import CacheSchedule
from ecad.schedule import schedule_key
from ecad.search import RunDirectory, SearchConfig
from ecad.search.run import SearchResult, run_search
from ecad.search.store import Evaluation


class FunctionExecutor:
    """A search executor: ``run(schedule or None)`` gives the output, ``cost(schedule)`` its MACs."""

    def __init__(
        self,
        layout,
        full_cost: float,
        run: Callable[[CacheSchedule | None], torch.Tensor],
        cost: Callable[[CacheSchedule], int],
        size: tuple[int, int],
    ) -> None:
        self.layout, self.full_cost, self.run, self.cost, self.size = layout, full_cost, run, cost, size
        self.reference = run(None)

    def describe(self):
        return self.layout, self.full_cost

    def image_size(self):
        return self.size

    def map(self, schedules, rows=None):
        for schedule in schedules:
            error = float((self.run(schedule) - self.reference).norm() / self.reference.norm())
            macs = self.cost(schedule)
            yield Evaluation(
                schedule_key(schedule),
                -error,
                float(macs),
                {"quality": -error, "macs": macs, "compute": macs / self.full_cost},
            )

    def close(self):
        pass


def short_search(executor: FunctionExecutor, out: Path, num_steps: int, name: str = "model") -> SearchResult:
    """Two generations of four candidates, written to the run directory ``out`` as ``ecad search`` writes one."""
    config = SearchConfig(
        model=name, prompts=["a"], metric="fidelity", population=4, generations=2, num_steps=num_steps, strategy="paper"
    )
    run_dir = RunDirectory(out)
    run_dir.open(config, resume=False)
    run_dir.commit(config)
    return run_search(
        config, run_dir, executor.layout, executor, executor.full_cost, progress=False, image_size=executor.image_size()
    )
