"""The schedule axes of one model, as plain data: what a schedule is made for and checked against (adapters build it
from a transformer; heuristics and the runtime read it without knowing the model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .cache_schedule import CacheSchedule
from .fields import ScheduleError


@dataclass(frozen=True)
class ModelLayout:
    """The schedule axes of one model instance."""

    block_names: tuple[str, ...]
    component_names: tuple[str, ...]
    exists: torch.Tensor
    feeds: tuple[tuple[int, int, int], ...] = ()  # (block, source, consumer) component indices
    cross_attention: tuple[str, ...] = ()

    def full_schedule(self, num_steps: int, **metadata: Any) -> CacheSchedule:
        return CacheSchedule.full(num_steps, self.block_names, self.component_names, self.exists, metadata)

    def check(self, schedule: CacheSchedule, model_name: str) -> None:
        """Raise a clear error when ``schedule`` was made for another layout."""
        if schedule.block_names != self.block_names:
            raise ScheduleError(
                f"schedule has {schedule.num_blocks} blocks ({_span(schedule.block_names)}) but {model_name} has "
                f"{len(self.block_names)} ({_span(self.block_names)}); use a schedule made for this model "
                "(for example `ecad.full_schedule(model, num_steps)` as a start)."
            )
        if schedule.component_names != self.component_names:
            raise ScheduleError(
                f"schedule components {list(schedule.component_names)} do not match {model_name}'s components "
                f"{list(self.component_names)}; use a schedule made for this model family."
            )
        if not torch.equal(schedule.exists, self.exists):
            raise ScheduleError(
                f"schedule's exists mask does not match which components {model_name}'s blocks have; "
                "use a schedule made for this exact architecture."
            )


def _span(names: tuple[str, ...]) -> str:
    return f"{names[0]}..{names[-1]}" if len(names) > 1 else ",".join(names)
