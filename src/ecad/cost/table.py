"""The cost table of one model: MACs of one denoising step per (block, component) and outside them, and the price of
any schedule on it (how the table is counted: :mod:`ecad.cost.counting`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..runtime.experts import split_schedule
from ..schedule import CacheSchedule

COUNTED = {
    "full": "what the runtime runs (prune=True): attention core included, dead recomputes and the inputs of "
    "replayed components left out; shapes of the observed pipeline call",
    "paper": "the ECAD paper's convention: attention core excluded, every recompute bit, fixed text length",
    "assumed": "attention core included, dead recomputes and replayed components' inputs left out; inputs assumed "
    "from the architecture (no pipeline call observed)",
}


@dataclass(frozen=True)
class CostTable:
    """MACs of one denoising step's transformer calls, split over (block, component) and the rest.

    ``outside_macs`` is what every step pays whatever the schedule says; ``input_macs`` what a component's input
    costs on top of the component, left out by the runtime when the component replays (``None``: not counted, the
    paper's convention).
    """

    arch: str
    convention: str
    height: int
    width: int
    batch_size: int
    text_len: int
    block_names: tuple[str, ...]
    component_names: tuple[str, ...]
    exists: torch.Tensor  # bool [blocks, components]
    component_macs: torch.Tensor  # int64 [blocks, components], 0 where a component does not exist
    outside_macs: int
    feeds: tuple[tuple[int, int, int], ...] = ()  # "X only feeds Y" pairs, see ecad.schedule.pruning
    input_macs: torch.Tensor | None = None  # int64 [blocks, components]
    counted: str = ""
    calls_per_step: int = 1
    frames: int = 1  # video frames (pixel space); 1 for an image model

    def full_schedule(self, num_steps: int) -> CacheSchedule:
        """No caching on this architecture: the reference for speedups."""
        return CacheSchedule.full(num_steps, self.block_names, self.component_names, self.exists, {"model": self.arch})

    @property
    def full_step_macs(self) -> int:
        return self.outside_macs + int(self.component_macs.sum())

    def step_macs(self, schedule: CacheSchedule, prune: bool | None = None) -> list[int]:
        """MACs of every denoising step under ``schedule`` (step 0 always full).

        ``prune=False`` counts every recompute bit and every block's own forward (the paper's semantics, the runtime
        with ``prune=False``); ``prune=True`` what the runtime runs by default: dead recomputes
        (:mod:`ecad.schedule.pruning`) and the inputs of replayed components left out. ``None``: the convention's own
        (full: True, paper: False).
        """
        self._check(schedule)
        if prune is None:
            prune = self.convention != "paper"
        if not prune:
            return [int(v) for v in schedule.step_costs(self.component_macs, self.outside_macs)]
        units, always = self.component_macs, self.outside_macs
        if self.input_macs is not None:
            units, always = units + self.input_macs, always - int(self.input_macs.sum())
        return [int(v) for v in schedule.step_costs(units, always, self.feeds)]

    def schedule_macs(self, schedule: CacheSchedule, prune: bool | None = None) -> int:
        return sum(self.step_macs(schedule, prune))

    def report(self, schedule: CacheSchedule) -> dict[str, Any]:
        """The numbers ``ecad macs --json`` prints: ``total_macs`` and ``mac_speedup`` as the convention counts."""
        per_step = self.step_macs(schedule)
        total = sum(per_step)
        pruned = self.schedule_macs(schedule, prune=True)
        unpruned = self.schedule_macs(schedule, prune=False)
        full = self.full_step_macs * schedule.num_steps
        return {
            "arch": self.arch,
            "convention": self.convention,
            "counted": self.counted,
            "height": self.height,
            "width": self.width,
            "frames": self.frames,
            "batch_size": self.batch_size,
            "text_len": self.text_len,
            "calls_per_step": self.calls_per_step,
            "num_steps": schedule.num_steps,
            "total_macs": total,
            "full_macs": full,
            "mac_speedup": full / total,
            "pruned_total_macs": pruned,
            "pruned_mac_speedup": full / pruned,
            "unpruned_total_macs": unpruned,
            "per_step": per_step,
            "outside_macs_per_step": self.outside_macs,
            "recompute_fraction": schedule.stats()["recompute_fraction"],
        }

    def _check(self, schedule: CacheSchedule) -> None:
        if (
            schedule.block_names != self.block_names
            or schedule.component_names != self.component_names
            or not torch.equal(schedule.exists, self.exists)
        ):
            raise ValueError(
                f"schedule layout ({schedule.num_blocks} blocks, components {list(schedule.component_names)}) does "
                f"not match the {self.arch} cost table ({len(self.block_names)} blocks, components "
                f"{list(self.component_names)}); count MACs for the architecture the schedule was made for."
            )


def experts_step_macs(
    table: CostTable, schedule: CacheSchedule, experts: list[int], prune: bool | None = None
) -> list[int]:
    """MACs of every step of ``schedule`` run by the experts (one cost table: they share the architecture); the
    first step of each expert computes in full."""
    return [
        macs for part in split_schedule(schedule, experts) if part is not None for macs in table.step_macs(part, prune)
    ]
