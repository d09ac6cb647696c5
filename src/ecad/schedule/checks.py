"""What makes a schedule's fields valid, checked when a :class:`ecad.schedule.CacheSchedule` is made: each problem is
refused with one :class:`ScheduleError` line that says what to fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..validation import whole
from .fields import FORECAST_ORDERS, ScheduleError


def as_bool_tensor(array: Any) -> torch.Tensor:
    """Bools, or 0/1 numbers; any other value (2, NaN, a string) is refused rather than read as ``True``."""
    try:
        tensor = torch.as_tensor(np.asarray(array) if not isinstance(array, torch.Tensor) else array)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ScheduleError(
            f"schedule bits must be an array of bools or 0/1, got {type(array).__name__} ({err})."
        ) from None
    tensor = tensor.detach().to("cpu")
    if tensor.dtype != torch.bool and not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ScheduleError("schedule bits must be bools or 0/1; the array holds other values.")
    return tensor.to(torch.bool).clone()


def step_count(num_steps: Any) -> int:
    """A whole number of denoising steps, at least one."""
    try:
        return whole(1)(num_steps)
    except ValueError as err:
        raise ScheduleError(f"num_steps {err}; a schedule has at least one denoising step.") from None


def checked_fields(
    recompute: Any,
    block_names: Any,
    component_names: Any,
    exists: Any,
    forecast: Any,
    forecast_order: Any,
) -> tuple[torch.Tensor, tuple[str, ...], tuple[str, ...], torch.Tensor, torch.Tensor]:
    """``(recompute, block_names, component_names, exists, forecast)`` as a schedule holds them: bool tensors and
    tuples of names, ``exists`` all true and ``forecast`` all false where not given."""
    recompute = as_bool_tensor(recompute)
    block_names = tuple(str(name) for name in block_names)
    component_names = tuple(str(name) for name in component_names)
    if recompute.ndim != 3:
        raise ScheduleError(
            f"recompute must have shape [steps, blocks, components], got {tuple(recompute.shape)}; "
            "reshape your array to three dimensions."
        )
    steps, blocks, components = recompute.shape
    if steps < 1:
        raise ScheduleError("a schedule needs at least one step.")
    if blocks < 1 or components < 1:
        raise ScheduleError(
            f"a schedule needs at least one block and one component, got shape {(steps, blocks, components)}."
        )
    if blocks != len(block_names) or components != len(component_names):
        raise ScheduleError(
            f"recompute has shape {tuple(recompute.shape)} but {len(block_names)} block names and "
            f"{len(component_names)} component names were given; pass one name per block and component."
        )
    for kind, names in (("block", block_names), ("component", component_names)):
        if len(set(names)) != len(names):
            raise ScheduleError(f"duplicate {kind} names in {list(names)}; {kind} names must be unique.")
    exists = torch.ones(blocks, components, dtype=torch.bool) if exists is None else as_bool_tensor(exists)
    if tuple(exists.shape) != (blocks, components):
        raise ScheduleError(
            f"exists must have shape [blocks, components] = {(blocks, components)}, got {tuple(exists.shape)}."
        )
    if bool((recompute & ~exists).any()):
        raise ScheduleError(
            "the schedule recomputes components that do not exist (exists mask is False there); "
            "clear those bits or fix the exists mask."
        )
    forecast = torch.zeros_like(recompute) if forecast is None else as_bool_tensor(forecast)
    if forecast.shape != recompute.shape:
        raise ScheduleError(
            f"forecast must have the shape of recompute {tuple(recompute.shape)}, got {tuple(forecast.shape)}."
        )
    if bool((forecast & (recompute | ~exists)).any()):
        raise ScheduleError(
            "the forecast mask is set where the schedule recomputes or the component does not "
            "exist; each (step, block, component) takes one action."
        )
    if forecast_order not in FORECAST_ORDERS:
        raise ScheduleError(f"forecast_order must be one of {FORECAST_ORDERS}, got {forecast_order!r}.")
    return recompute, block_names, component_names, exists, forecast
