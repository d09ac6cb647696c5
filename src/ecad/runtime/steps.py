"""Where a denoising loop is, read from the transformer calls alone.

Pipelines without diffusers' cache context (PixArt, SD3) tell a transformer hook nothing about the loop, so the
step is found from the timestep every call receives: a new timestep is the next step, the same one again is another
pass of the same step (FLUX with true CFG), and a larger one (or the first call, or another batch size) starts a new
generation. ecad's cache follows a pipeline's scheduler instead where it can (:mod:`ecad.runtime.state`); this rule
serves bare transformers and the observers of :mod:`ecad.evaluation` and :mod:`ecad.peers`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

NEW, PASS, STEP = "new", "pass", "step"


class StepClock:
    """Turns the timestep of each transformer call into (new generation?, step index, pass index)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self.pass_index = 0
        self.timestep: float | None = None
        self.batch_size: int | None = None

    def place(self, timestep: float, batch_size: int | None = None) -> str:
        """Place a call: :data:`NEW` generation, another :data:`PASS` of the step, or the next :data:`STEP`."""
        if self.timestep is None or timestep > self.timestep or batch_size != self.batch_size:
            self.step, self.pass_index, kind = 0, 0, NEW
        elif timestep == self.timestep:
            self.pass_index, kind = self.pass_index + 1, PASS
        else:
            self.step, self.pass_index, kind = self.step + 1, 0, STEP
        self.timestep, self.batch_size = timestep, batch_size
        return kind

    def tick(self, timestep: float) -> bool:
        """Place a call; returns True when it starts a new generation."""
        return self.place(timestep) == NEW


_POSITIONS: dict[tuple[type, str], int | None] = {}


def argument_position(cls: type, name: str) -> int | None:
    """The position of ``name`` among the positional arguments of ``cls.forward`` (None: keyword only or absent).
    Cached per class: the class's forward, since hooks and patches replace an instance's with a wrapper."""
    key = (cls, name)
    if key not in _POSITIONS:
        params = list(inspect.signature(cls.forward).parameters)[1:]
        _POSITIONS[key] = params.index(name) if name in params else None
    return _POSITIONS[key]


def call_argument(module: nn.Module, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The argument ``name`` of a call of ``module`` (by keyword, else by its position in its class's ``forward``)."""
    if name in kwargs:
        return kwargs[name]
    position = argument_position(type(module), name)
    if position is not None and position < len(args):
        return args[position]
    raise TypeError(
        f"the {type(module).__name__} call has no {name!r} argument, which ecad needs to find the "
        "denoising step; set the adapter's timestep_arg/sample_arg to the transformer's argument names."
    )


def scalar(value: Any) -> float:
    """A timestep tensor (one value per batch row, all equal) or number as a float."""
    return float(value.reshape(-1)[0]) if isinstance(value, torch.Tensor) else float(value)
