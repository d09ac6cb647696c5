"""Where a denoising loop is, read from the transformer calls alone.

Pipelines without diffusers' cache context (PixArt, SD3) tell a transformer hook nothing about the loop, so the
step is found from the timestep every call receives: a new timestep is the next step, the same one again is another
pass of the same step (FLUX with true CFG), and a larger one (or the first call) starts a new generation.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn


class StepClock:
    """Turns the timestep of each transformer call into (new generation?, step index)."""

    def __init__(self) -> None:
        self.step = 0
        self.timestep: float | None = None

    def tick(self, timestep: float) -> bool:
        """Place a call; returns True when it starts a new generation."""
        new = self.timestep is None or timestep > self.timestep
        if new:
            self.step = 0
        elif timestep < self.timestep:
            self.step += 1
        self.timestep = timestep
        return new


def call_argument(module: nn.Module, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The argument ``name`` of a call of ``module`` (by keyword, else by its position in its class's ``forward``)."""
    if name in kwargs:
        return kwargs[name]
    # The class's forward: hooks and patches may have replaced the instance's with a (*args, **kwargs) wrapper.
    params = list(inspect.signature(type(module).forward).parameters)[1:]
    if name in params and params.index(name) < len(args):
        return args[params.index(name)]
    raise TypeError(f"the {type(module).__name__} call has no {name!r} argument, which ecad needs to find the "
                    "denoising step; set the adapter's timestep_arg/sample_arg to the transformer's argument names.")


def scalar(value: Any) -> float:
    """A timestep tensor (one value per batch row, all equal) or number as a float."""
    return float(value.reshape(-1)[0]) if isinstance(value, torch.Tensor) else float(value)
