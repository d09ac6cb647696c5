"""The caching runtime: diffusers ``ModelHook``s that make each component recompute or replay per the schedule.

One :class:`CacheState` per transformer holds where the denoising loop is, the decision table and every kept output
(:class:`OutputCache`); three kinds of hook read it:

- :class:`StepTrackerHook` on the transformer reads the timestep of every call and works out the denoising step
  (a new timestep = next step; the same timestep again = another pass of the same step, e.g. true CFG; a larger
  timestep, a new batch size or an explicit reset = a new generation, which empties the caches).
- :class:`CallStartHook` on a pipeline's scheduler: every diffusers pipeline call sets its scheduler's timesteps
  before its first denoising step, so each call starts a new generation, even one that begins at a lower timestep
  than the last one seen (img2img with ``strength < 1``, or any call after an aborted one). The new generation
  starts at the scheduler's begin index: an img2img call runs the schedule's last steps. With a bare transformer
  the timestep rule above is the only signal (call ``handle.reset()`` after aborting a hand-written loop).
- :class:`ComponentCacheHook` on every component module (PixArt: ``attn1``, ``attn2``, ``ff``) either runs the
  module and keeps its raw output (a tensor or, for FLUX/SD3 joint attention, a tuple, kept as is), or returns the
  output it kept, which the block then gates and adds to the residual exactly as if it had been computed. Each pass
  of a step has its own cache slot (true CFG: the conditional and unconditional passes never see each other's).
  At a forecast step it returns, instead of the kept output, its extrapolation from the component's last computed
  outputs (:meth:`OutputCache.forecast`); only components some step forecasts keep more than their last output.
- :class:`BlockSkipHook` on every block whose adapter declares a skip forward (:mod:`ecad.adapters.skip`): at a
  step where some of the block's components replay, it runs that forward, which leaves out the norms and
  modulations feeding only replayed components.

With ``prune=True`` (default) the runtime skips all work whose result nothing reads: recomputes whose output is never
read (:mod:`ecad.pruning`) and the inputs of replayed components. No output bit changes.

The schedule is turned into nested lists of Python bools once, so a component call costs three list look-ups.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.utils.torch_utils import unwrap_module
from torch import nn

from .adapters import ModelAdapter, ModelLayout, get_adapter
from .cache_arguments import as_cache_dtype, as_flag, as_schedule, check_enabled, check_not_nested
from .adapters.skip import BlockSkip
from .provenance import CallCheck
from .schedule import CacheSchedule, ScheduleError

FORECAST_UNITS = ("step", "timestep")

logger = logging.getLogger(__name__)

_STEP_HOOK = "ecad_step_tracker"
_COMPONENT_HOOK = "ecad_component_cache"
_BLOCK_HOOK = "ecad_block_skip"


@dataclass
class CacheConfig:
    """How to cache: the schedule, whether to resample it when a call runs another number of steps, and whether to
    skip work whose result is never read (bit-identical results, less compute). ``cache_dtype`` keeps the
    outputs in a lower precision (half the memory for float16; replayed outputs are cast back, so results change
    slightly: measured in benchmarks/memory.py). ``forecast_unit`` is the time axis forecasts extrapolate along:
    ``"step"`` (denoising step index) or ``"timestep"`` (the timestep the transformer is called with: the sigma
    scale for flow-matching models); benchmarks/forecast.py measures which is better."""

    schedule: CacheSchedule
    resample: bool = False
    prune: bool = True
    cache_dtype: torch.dtype | None = None
    forecast_unit: str = "step"

    def __post_init__(self) -> None:
        self.schedule = as_schedule(self.schedule)
        self.resample, self.prune = as_flag("resample", self.resample), as_flag("prune", self.prune)
        self.cache_dtype = as_cache_dtype(self.cache_dtype)
        if self.forecast_unit not in FORECAST_UNITS:
            raise ValueError(f"forecast_unit must be one of {FORECAST_UNITS}, got {self.forecast_unit!r}.")


class OutputCache:
    """Every kept raw output, by ``(pass, block, component)``: the one place that holds what is cached.

    A key keeps its last output; a component that some step forecasts (``history``) keeps its last ``order + 1``
    computed outputs with the time each was computed at. ``dtype`` keeps floating outputs in a lower precision;
    :meth:`get` and :meth:`forecast` cast them back to the dtype they had, so a forecast is computed in the model's
    own precision.
    """

    def __init__(self, dtype: torch.dtype | None = None) -> None:
        self.dtype = dtype
        self._outputs: dict[tuple[int, int, int], list[tuple[float, Any]]] = {}
        self._dtypes: dict[tuple[int, int, int], torch.dtype] = {}
        self._depth: list[list[int]] | None = None  # [block][component]: outputs kept; None: one everywhere

    def set_history(self, history: torch.Tensor, order: int) -> None:
        """Keep ``order + 1`` outputs of the components marked in ``history`` (bool ``[blocks, components]``)."""
        self._depth = (1 + order * history.to(torch.int64)).tolist() if bool(history.any()) else None

    def __contains__(self, key: tuple[int, int, int]) -> bool:
        return key in self._outputs

    def __len__(self) -> int:
        return len(self._outputs)

    def put(self, key: tuple[int, int, int], output: Any, time: float = 0.0) -> None:
        if self.dtype is not None:
            self._dtypes[key] = _first_tensor(output).dtype
            output = _cast(output, self.dtype)
        depth = 1 if self._depth is None else self._depth[key[1]][key[2]]
        kept = self._outputs.get(key) if depth > 1 else None
        self._outputs[key] = [(time, output)] if kept is None else (kept + [(time, output)])[-depth:]

    def get(self, key: tuple[int, int, int]) -> Any:
        return self._restore(key, self._outputs[key][-1][1])

    @torch.compiler.disable  # the weights change every step: traced, each would be a new graph
    def forecast(self, key: tuple[int, int, int], time: float) -> Any:
        """The output extrapolated to ``time``: the polynomial through the kept outputs (Lagrange form, weights in
        float64, e.g. order 1: ``y1 * (1 + w) + y0 * (-w)`` with ``w = (time - t1) / (t1 - t0)``); with one kept
        output, that output."""
        kept = self._outputs[key]
        if len(kept) < 2:
            return self.get(key)
        times = [t for t, _ in kept]
        weights = [math.prod((time - times[m]) / (times[j] - times[m]) for m in range(len(times)) if m != j)
                   for j in range(len(times))]
        return _combine([self._restore(key, output) for _, output in kept], weights)

    def _restore(self, key: tuple[int, int, int], output: Any) -> Any:
        return output if self.dtype is None else _cast(output, self._dtypes[key])

    def clear(self) -> None:
        self._outputs.clear()
        self._dtypes.clear()

    def snapshot(self) -> tuple[dict[tuple[int, int, int], Any], dict[tuple[int, int, int], torch.dtype]]:
        """What is kept now, to :meth:`restore` later (a shallow copy: a kept output is replaced by the next one, never
        changed in place, so the tensors can be shared)."""
        return dict(self._outputs), dict(self._dtypes)

    def restore(self, snapshot: tuple[dict[tuple[int, int, int], Any], dict[tuple[int, int, int], torch.dtype]]) -> None:
        self._outputs, self._dtypes = dict(snapshot[0]), dict(snapshot[1])
    def kept(self) -> list[Any]:
        """The kept outputs as stored (in ``dtype`` when one is set), forecast histories included."""
        return [value for kept in self._outputs.values() for _, value in kept]

    def nbytes(self) -> int:
        """Memory the kept outputs hold: bytes of the distinct storages behind them."""
        storages = {}
        for value in self.kept():
            for tensor in _tensors(value):
                storage = tensor.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
        return sum(storages.values())


def runtime_bits(schedule: CacheSchedule, layout: ModelLayout, prune: bool = True) -> torch.Tensor:
    """What the runtime computes under ``schedule``: its effective bits, less dead work when ``prune``. Two schedules
    whose runtime bits agree on rows 0..k compute steps 0..k alike and keep the same outputs (pruning looks ahead, so
    their effective bits alone do not say so)."""
    return schedule.live(layout.feeds) if prune else schedule.effective()


class CacheState:
    """Where the denoising loop is, what to compute there, and what is kept: shared by all hooks of one transformer."""

    def __init__(self, config: CacheConfig, scheduler: Any | None, layout: ModelLayout) -> None:
        self.scheduler = scheduler
        self.resample = config.resample
        self.prune = config.prune
        self.layout = layout
        self.call_start: CallStartHook | None = None
        self.outputs = OutputCache(config.cache_dtype)
        self.call_check: CallCheck | None = None  # warns when a call differs from the schedule's recorded settings
        self.forecast_unit = config.forecast_unit
        self.computed = 0
        self.reused = 0
        self.forecasted = 0
        self.enabled, self.entered = True, False  # see ecad.cache_arguments
        self.set_schedule(config.schedule)
        self.reset()

    def set_schedule(self, schedule: CacheSchedule) -> None:
        self.schedule = schedule
        self._activate(schedule)

    def _activate(self, schedule: CacheSchedule) -> None:
        """Turn the schedule that runs into the decision tables the hooks read: ``table[step][block][component]``
        (recompute?), ``forecast[step][block][component]`` (forecast rather than reuse?) and ``partial[step][block]``
        (does some existing component of the block replay or forecast?)."""
        self.active = schedule
        bits = runtime_bits(schedule, self.layout, self.prune)
        history = schedule.history_needed()
        self.table: list[list[list[bool]]] = bits.tolist()
        self.forecast: list[list[list[bool]]] = schedule.effective_forecast().tolist()
        self.partial: list[list[bool]] = (~bits & self.layout.exists).any(dim=2).tolist()
        self.outputs.set_history(history, schedule.forecast_order)

    def reset(self) -> None:
        """Forget the denoising position and every kept output: the next call starts a new generation."""
        self.step = 0
        self.pass_index = 0
        self.last_timestep: float | None = None
        self.batch_size: int | None = None
        self.outputs.clear()

    def computes(self, block: int, component: int) -> bool:
        """Whether the component runs now: its bit says so, or this pass has nothing kept for it yet."""
        return self.table[self.step][block][component] or (self.pass_index, block, component) not in self.outputs

    def keep(self, block: int, component: int, output: Any) -> None:
        self.outputs.put((self.pass_index, block, component), output, self._time())
        self.computed += 1

    def replay(self, block: int, component: int) -> Any:
        """The output of a component that does not run now: its kept output, or at a forecast step its forecast."""
        key = (self.pass_index, block, component)
        if self.forecast[self.step][block][component]:
            self.forecasted += 1
            return self.outputs.forecast(key, self._time())
        self.reused += 1
        return self.outputs.get(key)

    def _time(self) -> float:
        return float(self.step) if self.forecast_unit == "step" else float(self.last_timestep)

    def advance(self, timestep: float, batch_size: int) -> None:
        """Place the transformer call that is about to run."""
        if self.last_timestep is None or timestep > self.last_timestep or batch_size != self.batch_size:
            self.reset()
            self._check_call_steps()
            self.step = self._first_step()
        elif timestep == self.last_timestep:
            self.pass_index += 1
        else:
            self.step += 1
            self.pass_index = 0
            if self.step >= len(self.table):
                raise ScheduleError(
                    f"the generation runs more denoising steps than the schedule's {len(self.table)}; call with "
                    f"num_inference_steps={len(self.table)}, or use `schedule.resample(N)` for N steps."
                )
        self.last_timestep = timestep
        self.batch_size = batch_size

    def _first_step(self) -> int:
        """The schedule row a new generation starts at: 0, or the scheduler's begin index (img2img skips the first
        steps of the trajectory; nothing is cached yet, so that row computes in full whatever its bits say)."""
        begin = getattr(self.scheduler, "begin_index", None)
        return begin // getattr(self.scheduler, "order", 1) if begin else 0

    def _check_call_steps(self) -> None:
        """With a pipeline's scheduler we know the call's step count up front: check it before any compute."""
        steps = getattr(self.scheduler, "num_inference_steps", None)
        if steps is None or steps == self.active.num_steps:
            return
        if steps == self.schedule.num_steps:
            self._activate(self.schedule)
        elif self.resample:
            self._activate(self.schedule.resample(steps))
            logger.info("ecad: resampled the %d-step schedule to this call's %d steps", self.schedule.num_steps, steps)
        else:
            raise ScheduleError(
                f"the pipeline call runs {steps} denoising steps but the schedule has {self.schedule.num_steps}; "
                f"call with num_inference_steps={self.schedule.num_steps}, use `schedule.resample({steps})`, "
                "or enable the cache with resample=True."
            )


class CallStartHook:
    """On a pipeline's scheduler: wraps ``set_timesteps``, which every diffusers pipeline calls at the start of a
    call, so that each call starts a new generation. (Schedulers are not modules, so this is not a ``ModelHook``.)"""

    def __init__(self, scheduler: Any, state: CacheState) -> None:
        self.scheduler = scheduler
        self.previous = scheduler.__dict__.get("set_timesteps")
        original = scheduler.set_timesteps

        @functools.wraps(original)  # pipelines inspect its signature (custom timesteps, sigmas)
        def set_timesteps(*args: Any, **kwargs: Any) -> Any:
            state.reset()
            return original(*args, **kwargs)

        self.wrapper = set_timesteps
        scheduler.set_timesteps = set_timesteps

    def remove(self) -> None:
        if self.scheduler.__dict__.get("set_timesteps") is not self.wrapper:
            return  # replaced since: leave what is there
        if self.previous is None:
            del self.scheduler.__dict__["set_timesteps"]
        else:
            self.scheduler.set_timesteps = self.previous


class StepTrackerHook(ModelHook):
    """On the transformer: turns each call's timestep into (step, pass) for the component hooks."""

    _is_stateful = True

    def __init__(self, state: CacheState, timestep_arg: str, sample_arg: str) -> None:
        super().__init__()
        self.state = state
        self.names = (timestep_arg, sample_arg)
        self.positions: dict[str, int] = {}

    def initialize_hook(self, module: nn.Module) -> nn.Module:
        params = list(inspect.signature(module.forward).parameters)
        self.positions = {name: params.index(name) for name in self.names if name in params}
        return module

    def _argument(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs.get(name) is not None:
            return kwargs[name]
        position = self.positions.get(name)
        if position is None or position >= len(args) or args[position] is None:
            raise ScheduleError(f"ecad needs the transformer's {name!r} argument to know the denoising step.")
        return args[position]

    @torch.compiler.disable(recursive=False)
    def pre_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        timestep_arg, sample_arg = self.names
        timestep = self._argument(timestep_arg, args, kwargs)
        value = float(timestep.reshape(-1)[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
        sample = self._argument(sample_arg, args, kwargs)
        state = self.state
        state.advance(value, int(sample.shape[0]))
        if state.call_check is not None and state.step == 0 and state.pass_index == 0:
            state.call_check.on_generation(state.schedule, sample)
        return args, kwargs

    def reset_state(self, module: nn.Module) -> nn.Module:
        self.state.reset()
        return module


class ComponentCacheHook(ModelHook):
    """On one component module: compute and keep its raw output, or replay the kept one."""

    def __init__(self, state: CacheState, block: int, component: int) -> None:
        super().__init__()
        self.state = state
        self.block = block
        self.component = component

    @torch.compiler.disable(recursive=False)
    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        state = self.state
        if state.computes(self.block, self.component):
            output = self.fn_ref.original_forward(*args, **kwargs)
            state.keep(self.block, self.component, output)
            return output
        return state.replay(self.block, self.component)


class _RuntimeBlockStep:
    """The :class:`ecad.adapters.skip.BlockStep` of one block, read from the cache state at call time (never traced:
    the step number, the cache's contents and the counters it reads change at every call)."""

    def __init__(self, state: CacheState, block: int, components: dict[str, int]) -> None:
        self.state = state
        self.block = block
        self.components = components

    @torch.compiler.disable(recursive=False)
    def runs(self, component: str) -> bool:
        return self.state.computes(self.block, self.components[component])

    @torch.compiler.disable(recursive=False)
    def replay(self, component: str) -> Any:
        return self.state.replay(self.block, self.components[component])


class BlockSkipHook(ModelHook):
    """On one block: where some of its components replay at this step, run the adapter's skip forward, which leaves
    out the work that only feeds them; elsewhere the block's own forward."""

    def __init__(self, state: CacheState, block: int, skip: BlockSkip, components: dict[str, int]) -> None:
        super().__init__()
        self.state = state
        self.block = block
        self.step = _RuntimeBlockStep(state, block, components)
        # Its decisions stay out of any compiled graph; the tensor work it calls is compiled piece by piece.
        self.skip_forward = torch.compiler.disable(skip.forward, recursive=False)

    @torch.compiler.disable(recursive=False)
    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        state = self.state
        if state.partial[state.step][self.block]:
            return self.skip_forward(module, self.step, *args, **kwargs)
        return self.fn_ref.original_forward(*args, **kwargs)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _first_tensor(value: Any) -> torch.Tensor:
    tensors = _tensors(value)
    if not tensors:
        raise TypeError(f"ecad caches tensor outputs; a component returned {type(value).__name__}.")
    return tensors[0]


def _combine(outputs: list[Any], weights: list[float]) -> Any:
    """``sum(w * y)`` over outputs of the same structure (tensors, nested tuples); non-floating parts: the last's."""
    last = outputs[-1]
    if isinstance(last, torch.Tensor):
        if not last.is_floating_point():
            return last
        total = last * weights[-1]
        for output, weight in zip(outputs[:-1], weights[:-1]):
            total.add_(output, alpha=weight)
        return total
    if isinstance(last, tuple):
        return tuple(_combine([o[i] for o in outputs], weights) for i in range(len(last)))
    return last


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """Floating tensors of a (possibly nested tuple) output in ``dtype``."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, tuple):
        return tuple(_cast(v, dtype) for v in value)
    return value


def _split_target(target: Any) -> tuple[nn.Module, Any | None]:
    """``(transformer, scheduler or None)`` from a pipeline or a bare transformer; a ``torch.compile`` wrapper
    (``pipe.transformer = torch.compile(pipe.transformer)``) is unwrapped, since the hooks live on the modules."""
    if isinstance(target, nn.Module):
        return unwrap_module(target), None
    transformer = getattr(target, "transformer", None)
    if not isinstance(transformer, nn.Module):
        raise TypeError(
            f"ecad caches diffusion transformers: pass a pipeline with a `transformer` or the transformer itself, "
            f"got {type(target).__name__}."
        )
    return unwrap_module(transformer), getattr(target, "scheduler", None)


def model_layout(target: Any, adapter: ModelAdapter | None = None) -> ModelLayout:
    """The schedule axes (block names, component names, exists mask) of a pipeline's or a bare transformer."""
    transformer, _ = _split_target(target)
    return get_adapter(transformer, adapter).layout(transformer)


def full_schedule(target: Any, num_steps: int, adapter: ModelAdapter | None = None, **metadata: Any) -> CacheSchedule:
    """The no-caching schedule for this model and step count: the usual starting point."""
    return model_layout(target, adapter).full_schedule(num_steps, **metadata)


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
    schedule: CacheSchedule | CacheConfig,
    *,
    resample: bool = False,
    prune: bool = True,
    cache_dtype: torch.dtype | None = None,
    adapter: ModelAdapter | None = None,
    forecast_unit: str = "step",
) -> CacheHandle:
    """Run ``target`` (a diffusers pipeline or its transformer) under a cache schedule.

    Replaces an ecad cache enabled on the model by a plain call (its handle is then disabled); inside a ``with
    ecad.enable_cache(...)`` block on the same model it is refused (use ``handle.set_schedule``). ``schedule`` may be
    a path; ``cache_dtype`` must be a floating-point dtype. With a pipeline, every call's step count is checked
    against the schedule before any compute (``resample=True`` maps the schedule to the call's step count instead
    and logs it). ``prune=False`` computes what nothing reads, as the paper's code did: recomputes whose output is
    never read and the inputs of replayed components (same images, more compute).
    ``forecast_unit`` (``"step"`` or ``"timestep"``) is the time axis a forecasting schedule extrapolates along.
    ``adapter`` serves models no registered adapter knows (``ecad.GenericAdapter(...)``). A schedule file that records
    the settings it was found under is checked against the pipeline and each generation (:mod:`ecad.provenance`):
    differences are logged as warnings. Use the returned handle,
    or :func:`disable_cache`, to restore the model's own behaviour exactly::

        with ecad.enable_cache(pipe, ecad.CacheSchedule.load("fast.json")):
            image = pipe("a red circle above a blue square", num_inference_steps=20).images[0]
    """
    config = (
        schedule if isinstance(schedule, CacheConfig)
        else CacheConfig(schedule, resample, prune, cache_dtype, forecast_unit)
    )
    transformer, scheduler = _split_target(target)
    adapter = get_adapter(transformer, adapter)
    layout = adapter.layout(transformer)
    layout.check(config.schedule, type(transformer).__name__)
    check_not_nested(_installed_state(transformer))
    disable_cache(transformer)

    state = CacheState(config, scheduler, layout)
    if not isinstance(target, nn.Module):
        state.call_check = CallCheck(target)
        state.call_check.on_enable(config.schedule)
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.register_hook(StepTrackerHook(state, adapter.timestep_arg, adapter.sample_arg), _STEP_HOOK)
    for block, component, _, module in adapter.components(transformer):
        HookRegistry.check_if_exists_or_initialize(module).register_hook(
            ComponentCacheHook(state, block, component), _COMPONENT_HOOK)
    if config.prune:
        for block, module, skip, components in adapter.block_skips(transformer):
            HookRegistry.check_if_exists_or_initialize(module).register_hook(
                BlockSkipHook(state, block, skip, components), _BLOCK_HOOK)
    registry.invalidate_child_registries_cache()
    if scheduler is not None and callable(getattr(scheduler, "set_timesteps", None)):
        state.call_start = CallStartHook(scheduler, state)
    return CacheHandle(transformer, state)


def disable_cache(target: Any) -> None:
    """Remove ecad's hooks; the model behaves exactly as before :func:`enable_cache`. A no-op if not enabled."""
    transformer, _ = _split_target(target)
    state = _installed_state(transformer)
    if state is not None:
        state.enabled = False
        if state.call_start is not None:
            state.call_start.remove()
    for module in transformer.modules():
        remove_hooks(module, (_STEP_HOOK, _COMPONENT_HOOK, _BLOCK_HOOK))


def remove_hooks(module: nn.Module, names: tuple[str, ...]) -> None:
    """Remove the named hooks of one module; without hooks left it is as it was built (no instance forward)."""
    registry = getattr(module, "_diffusers_hook", None)
    if registry is None:
        return
    for name in names:
        registry.remove_hook(name, recurse=False)
    if not registry.hooks:
        module.__dict__.pop("forward", None)
        del module._diffusers_hook


def _installed_state(transformer: nn.Module) -> CacheState | None:
    registry = getattr(transformer, "_diffusers_hook", None)
    hook = registry.get_hook(_STEP_HOOK) if registry is not None else None
    return None if hook is None else hook.state


def active_cache(target: Any) -> CacheHandle | None:
    """The handle of the ecad cache enabled on this model, if any."""
    transformer, _ = _split_target(target)
    state = _installed_state(transformer)
    return None if state is None else CacheHandle(transformer, state)
