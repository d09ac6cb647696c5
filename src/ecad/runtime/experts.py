"""Pipelines that hand the denoising trajectory from one transformer to another: Wan 2.2 A14B's ``WanPipeline`` runs
``transformer`` (high noise) at the steps whose timestep is at least ``boundary_ratio`` x the scheduler's training
steps, and ``transformer_2`` (low noise) after them.

One schedule covers the whole trajectory, stored as for any model: ``[steps, blocks, components]`` over the experts'
common block layout (the two experts of Wan 2.2 have the same architecture). Each expert reads its own steps' rows:
the first expert rows ``0..k-1``, the second rows ``k..N-1``, where ``k`` follows from the scheduler's timesteps for
``N`` steps and the boundary (:func:`expert_steps`). Nothing is carried across the hand-over: the second expert's
first step computes in full whatever its row says, and the cost model counts it so
(:func:`ecad.cost.table.experts_step_macs`).
Each expert places its calls by their timesteps (a bare transformer to :func:`ecad.enable_cache`).
"""

from __future__ import annotations

from typing import Any

from ..adapters.layout import has_experts
from ..schedule import CacheSchedule, ScheduleError
from .cache import CacheHandle, enable_cache

EXPERTS = ("transformer", "transformer_2")


def expert_steps(pipe: Any, num_steps: int) -> list[int]:
    """The expert (0: ``transformer``, 1: ``transformer_2``) that runs each of ``num_steps`` steps of ``pipe``."""
    if not has_experts(pipe):
        return [0] * num_steps
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)  # a fresh one: the pipeline's may be hooked
    scheduler.set_timesteps(num_steps, device="cpu")
    boundary = pipe.config.boundary_ratio * scheduler.config.num_train_timesteps
    return [0 if float(t) >= boundary else 1 for t in scheduler.timesteps[:num_steps]]


def split_schedule(schedule: CacheSchedule, experts: list[int]) -> list[CacheSchedule | None]:
    """Each expert's rows of ``schedule`` as a schedule of its own (``None``: the expert runs no step)."""
    if len(experts) != schedule.num_steps:
        raise ScheduleError(f"the schedule has {schedule.num_steps} steps but the pipeline runs {len(experts)}.")
    parts: list[CacheSchedule | None] = []
    for expert in range(len(EXPERTS)):
        rows = [step for step, e in enumerate(experts) if e == expert]
        if not rows:
            parts.append(None)
            continue
        forecast = schedule.forecast[rows] if schedule.forecast is not None else None
        parts.append(
            CacheSchedule(
                schedule.recompute[rows],
                schedule.block_names,
                schedule.component_names,
                schedule.exists,
                {**schedule.metadata, "expert": EXPERTS[expert]},
                forecast,
                schedule.forecast_order,
            )
        )
    return parts


class ExpertsHandle:
    """The caches of every expert of one pipeline, used as one :class:`ecad.CacheHandle`."""

    def __init__(self, handles: list[CacheHandle]) -> None:
        self.handles = handles

    @property
    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for handle in self.handles:
            for name, value in handle.counts.items():
                totals[name] = totals.get(name, 0) + value
        return totals

    def disable(self) -> None:
        for handle in self.handles:
            handle.disable()

    def __enter__(self) -> ExpertsHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disable()


def enable_cache_experts(pipe: Any, schedule: CacheSchedule | str, **options: Any) -> ExpertsHandle:
    """Run a pipeline with two experts (Wan 2.2 A14B) under one schedule of its whole trajectory; each expert reads
    its own steps' rows.

    Args:
        pipe: a pipeline with ``transformer``, ``transformer_2`` and ``boundary_ratio`` in its config.
        schedule: a :class:`CacheSchedule` (or its file) of ``num_inference_steps`` rows.
        options: passed on to :func:`ecad.enable_cache` for each expert (``prune``, ``cache_dtype``, ...).

    Returns:
        An :class:`ExpertsHandle`: counts over both experts, ``disable()``, or use it as a context manager.

    Example:

    ```python
    with ecad.enable_cache_experts(pipe, ecad.CacheSchedule.load("wan22.json")):
        video = pipe(prompt, num_inference_steps=40).frames[0]
    ```
    """
    if not has_experts(pipe):
        raise ValueError(f"{type(pipe).__name__} runs one transformer: use ecad.enable_cache(pipe, schedule).")
    schedule = schedule if isinstance(schedule, CacheSchedule) else CacheSchedule.load(schedule)
    parts = split_schedule(schedule, expert_steps(pipe, schedule.num_steps))
    handles: list[CacheHandle] = []
    try:
        for name, part in zip(EXPERTS, parts, strict=True):
            if part is not None:
                handles.append(enable_cache(getattr(pipe, name), part, **options))
    except BaseException:
        ExpertsHandle(handles).disable()
        raise
    return ExpertsHandle(handles)
