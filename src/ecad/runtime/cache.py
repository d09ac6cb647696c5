"""The public runtime: :func:`enable_cache`, :func:`disable_cache`, :func:`active_cache` and the :class:`CacheHandle`.

``enable_cache`` binds the model's adapter, builds the :class:`ecad.runtime.state.CacheState` and installs the hooks
(:mod:`ecad.runtime.hooks`) on the transformer, its blocks and their components, and the
:class:`ecad.runtime.state.SchedulerClock` on a pipeline's scheduler. A compiled transformer (whole or block by block,
:func:`ecad.compile_transformer`) traces no decision: the recompile limit is raised to fit the schedule's distinct
plans.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch
from diffusers.hooks import HookRegistry
from torch import nn

from ..adapters import ModelAdapter, get_adapter
from ..adapters.layout import has_experts, split_target
from ..schedule import CacheSchedule
from .cache_arguments import as_schedule, check_enabled, check_not_nested
from .hook_registry import remove_hooks
from .hooks import (
    BLOCK_HOOK,
    COMPONENT_HOOK,
    HOOK_NAMES,
    STEP_HOOK,
    BlockSkipHook,
    ComponentCacheHook,
    StepTrackerHook,
    installed_state,
)
from .plans import SEEN_BLOCK_PLANS, SEEN_STEP_PLANS, PlanBook
from .provenance import CallCheck
from .state import CacheConfig, CacheState, SchedulerClock

logger = logging.getLogger(__name__)


class CacheHandle:
    """What :func:`enable_cache` returns: swap schedules, read counters, or disable (also as a context manager)."""

    def __init__(self, transformer: nn.Module, state: CacheState) -> None:
        self.transformer = transformer
        self.state = state

    @property
    def schedule(self) -> CacheSchedule:
        return self.state.schedule

    def set_schedule(self, schedule: CacheSchedule | str) -> None:
        """Use another schedule of the same layout without re-installing hooks (what a search does per candidate)."""
        check_enabled(self.state, "set_schedule")
        schedule = as_schedule(schedule)
        self.state.layout.check(schedule, type(self.transformer).__name__)
        self.state.set_schedule(schedule)
        self.state.reset()
        allow_recompiles(self.state.book)

    def reset(self) -> None:
        self.state.reset()

    def cache_bytes(self) -> int:
        """Memory the kept outputs hold now (forecast histories included): bytes of the distinct storages."""
        return self.state.outputs.nbytes()

    @property
    def counts(self) -> dict[str, int]:
        """Component calls computed, replayed and forecast since the cache was enabled."""
        return {"computed": self.state.computed, "reused": self.state.reused, "forecast": self.state.forecasted}

    def disable(self) -> None:
        """Remove this cache; a no-op once it is disabled or replaced (a newer cache on the model stays)."""
        if self.state.enabled:
            disable_cache(self.transformer)

    def __enter__(self) -> CacheHandle:
        check_enabled(self.state, "enter a `with` block")
        self.state.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.disable()


def enable_cache(
    target: Any,
    schedule: CacheSchedule | str | CacheConfig,
    *,
    resample: bool | None = None,
    prune: bool | None = None,
    cache_dtype: torch.dtype | None = None,
    adapter: ModelAdapter | None = None,
    forecast_unit: str | None = None,
) -> CacheHandle:
    """Run ``target`` (a diffusers pipeline or its transformer) under a cache schedule.

    Replaces an ecad cache enabled on the model by a plain call (its handle is then disabled); inside a ``with
    ecad.enable_cache(...)`` block on the same model it is refused (use ``handle.set_schedule``). With a pipeline,
    every call's step count is checked against the schedule before any compute, and the denoising step follows the
    pipeline's scheduler, so ``torch.compile`` (whole model or :func:`ecad.compile_transformer`'s regional
    compilation) traces no decision: ``fullgraph=True`` works, one graph per distinct plan. A bare transformer is
    placed by the timestep of each call instead (one graph break per call when compiled). A schedule file that records
    the settings it was found under is checked against the pipeline and each generation
    (:mod:`ecad.runtime.provenance`): differences are logged as warnings.

    Args:
        target: a diffusers pipeline with a ``transformer`` (and a ``scheduler``), or the transformer itself; a
            ``torch.compile`` wrapper is looked through.
        schedule: a :class:`CacheSchedule`, the path of a schedule file, or a :class:`CacheConfig` (then the four
            settings below come from it, and giving any of them beside it is a ``TypeError``).
        resample: map the schedule to a call's step count when it differs (logged) instead of refusing the call
            (default ``False``).
        prune: skip work whose result nothing reads (same images, less compute; default ``True``); ``False``
            computes it, as the paper's code did: recomputes whose output is never read and the inputs of replayed
            components.
        cache_dtype: a floating-point dtype to keep outputs in (less memory; replayed outputs are cast back; default:
            as computed).
        adapter: serves models no registered adapter knows (``ecad.GenericAdapter(...)``).
        forecast_unit: the time axis a forecasting schedule extrapolates along, ``"step"``
            (default) or ``"timestep"``.

    Returns:
        A :class:`CacheHandle`: swap schedules, read counts, or disable the cache (also as a context manager), which
        restores the model's own behaviour exactly.

    Raises:
        ValueError: ``target`` is a pipeline that hands the trajectory between two transformers (Wan 2.2 A14B); use
            :func:`ecad.enable_cache_experts` there.

    Example:

    ```python
    with ecad.enable_cache(pipe, ecad.CacheSchedule.load("fast.json")):
        image = pipe("a red circle above a blue square", num_inference_steps=20).images[0]
    ```
    """
    config = _config(schedule, resample=resample, prune=prune, cache_dtype=cache_dtype, forecast_unit=forecast_unit)
    if has_experts(target):
        raise ValueError(
            f"{type(target).__name__} runs two transformers (transformer, transformer_2) along the trajectory; use "
            "ecad.enable_cache_experts(pipe, schedule), which gives each its own steps' rows of the schedule."
        )
    transformer, scheduler = split_target(target)
    adapter = get_adapter(transformer, adapter)
    layout = adapter.layout(transformer)
    layout.check(config.schedule, type(transformer).__name__)
    check_not_nested(installed_state(transformer))
    disable_cache(transformer)

    skips = adapter.block_skips(transformer) if config.prune else []
    skipping = {block for block, *_ in skips}
    unread = tuple(feed for feed in layout.feeds if feed[0] in skipping)
    state = CacheState(config, scheduler, layout, unread, functools.partial(_device, transformer))
    if not isinstance(target, nn.Module):
        state.call_check = CallCheck(target)
        state.call_check.on_enable(config.schedule)
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.register_hook(StepTrackerHook(state, adapter.timestep_arg, adapter.sample_arg), STEP_HOOK)
    for block, component, _, module in adapter.components(transformer):
        if block not in skipping:
            HookRegistry.check_if_exists_or_initialize(module).register_hook(
                ComponentCacheHook(state.blocks[block], component), COMPONENT_HOOK
            )
    for block, module, skip, _ in skips:
        HookRegistry.check_if_exists_or_initialize(module).register_hook(
            BlockSkipHook(state.blocks[block], skip), BLOCK_HOOK
        )
    registry.invalidate_child_registries_cache()
    if scheduler is not None and callable(getattr(scheduler, "set_timesteps", None)):
        state.clock_hook = SchedulerClock(scheduler, state)
    allow_recompiles(state.book)
    return CacheHandle(transformer, state)


def _config(schedule: CacheSchedule | str | CacheConfig, **settings: Any) -> CacheConfig:
    """The cache's config: ``schedule`` if it is one (then no other setting may be given), else one built from it."""
    given = {name: value for name, value in settings.items() if value is not None}
    if not isinstance(schedule, CacheConfig):
        return CacheConfig(schedule, **given)
    if given:
        raise TypeError(
            f"enable_cache got {', '.join(given)} beside a CacheConfig, which already holds them: set them in the "
            f"config instead (`dataclasses.replace(config, {', '.join(f'{n}=...' for n in given)})`)."
        )
    return schedule


def _device(transformer: nn.Module) -> torch.device:
    parameter = next(transformer.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def allow_recompiles(book: PlanBook) -> None:
    """Raise dynamo's recompile limit (per code object, 8 by default) to what compiling under the schedules run so far
    needs: one graph per distinct step plan (whole model) or block plan (regional), with room for true CFG's second
    pass and later start rows. Past the limit dynamo would run the rest eagerly (or fail, with ``fullgraph=True``)."""
    config = torch._dynamo.config
    book.distinct()
    needed = 2 * max(len(SEEN_STEP_PLANS), len(SEEN_BLOCK_PLANS)) + 8
    if config.recompile_limit < needed:
        logger.info(
            "ecad: torch._dynamo.config.recompile_limit raised from %d to %d for the schedules' plans",
            config.recompile_limit,
            needed,
        )
        config.recompile_limit = needed
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 4 * needed)


def disable_cache(target: Any) -> None:
    """Remove ecad's hooks; the model behaves exactly as before :func:`enable_cache`. A no-op if not enabled."""
    transformer, _ = split_target(target)
    state = installed_state(transformer)
    if state is not None:
        state.enabled = False
        if state.clock_hook is not None:
            state.clock_hook.remove()
    for module in transformer.modules():
        remove_hooks(module, HOOK_NAMES)


def active_cache(target: Any) -> CacheHandle | None:
    """The handle of the ecad cache enabled on this model, if any."""
    transformer, _ = split_target(target)
    state = installed_state(transformer)
    return None if state is None else CacheHandle(transformer, state)
