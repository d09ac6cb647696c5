"""What both schedule file formats share: the action codes, the error every reader raises, and the fields a writer
reads of a schedule (no schedule class and no model here)."""

from __future__ import annotations

from typing import Any, Protocol

import torch

FORMAT = "ecad.schedule/1"
FORMAT_V2 = "ecad.schedule/2"  # adds the forecast action 'f' and forecast_order
FORMATS = (FORMAT, FORMAT_V2)
# Most steps x blocks x components one schedule may hold (a 20-step FLUX.1 schedule has 6,840).
MAX_BITS = 1 << 26
# The characters of the three actions, indexed by their code (0 reuse, 1 recompute, 2 forecast).
ACTION_CHARS = ("0", "1", "f")
RECOMPUTE, FORECAST = 1, 2
FORECAST_ORDERS = (1, 2)


class ScheduleError(ValueError):
    """A schedule is malformed or does not fit the model or call it is used with."""


class ScheduleFields(Protocol):
    """What the writers read of a schedule (:class:`ecad.schedule.CacheSchedule` has these fields)."""

    recompute: torch.Tensor
    forecast: torch.Tensor
    exists: torch.Tensor
    block_names: tuple[str, ...]
    component_names: tuple[str, ...]
    metadata: dict[str, Any]
    forecast_order: int


def actions_of(recompute: torch.Tensor, forecast: torch.Tensor) -> torch.Tensor:
    """uint8 action codes from the two masks: ``0`` reuse, ``1`` recompute, ``2`` forecast."""
    return recompute.to(torch.uint8) + FORECAST * forecast.to(torch.uint8)


def check_size(source: str, steps: int, blocks: int, components: int) -> None:
    """Refuse before allocating: the file's content bounds the steps, this bounds blocks x components."""
    if steps * blocks * components > MAX_BITS:
        raise ScheduleError(
            f"{source}: {steps} steps x {blocks} blocks x {components} components is more than the "
            f"{MAX_BITS:,} bits ecad holds in one schedule; is it a schedule file?"
        )


def preview(row: str) -> str:
    return repr(row) if len(row) <= 40 else f"{len(row)} characters starting {row[:20]!r}"
