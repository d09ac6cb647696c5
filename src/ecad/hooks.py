"""The caching runtime: diffusers ``ModelHook``s that make each component recompute or replay per the schedule.

Two kinds of hook share one :class:`CacheState`:

- :class:`StepTrackerHook` on the transformer reads the timestep of every call and works out the denoising step
  (a new timestep = next step; the same timestep again = another pass of the same step, e.g. true CFG; a larger
  timestep, a new batch size or an explicit reset = a new generation, which empties the caches).
- :class:`ComponentCacheHook` on every component module (PixArt: ``attn1``, ``attn2``, ``ff``) either runs the
  module and keeps its raw output (a tensor or, for FLUX/SD3 joint attention, a tuple, kept as is), or returns the
  output it kept, which the block then gates and adds to the residual exactly as if it had been computed. Each pass
  of a step has its own cache slot (true CFG: the conditional and unconditional passes never see each other's).

With ``prune=True`` (default) the decision table also skips recomputes whose output nothing reads (see
:mod:`ecad.pruning`), which changes no output bit.

The schedule is turned into a nested list of Python bools once, so a component call costs three list look-ups.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.utils.torch_utils import unwrap_module
from torch import nn

from .adapters import ModelAdapter, ModelLayout, get_adapter
from .provenance import CallCheck
from .schedule import CacheSchedule, ScheduleError

logger = logging.getLogger(__name__)

_STEP_HOOK = "ecad_step_tracker"
_COMPONENT_HOOK = "ecad_component_cache"


@dataclass
class CacheConfig:
    """How to cache: the schedule, whether to resample it when a call runs another number of steps, and whether to
    skip recomputes whose output is never read (bit-identical results, fewer MACs). ``cache_dtype`` keeps the
    outputs in a lower precision (half the memory for float16; replayed outputs are cast back, so results change
    slightly: measured in benchmarks/memory.py)."""

    schedule: CacheSchedule
    resample: bool = False
    prune: bool = True
    cache_dtype: torch.dtype | None = None


class CacheState:
    """Where the denoising loop is, shared by the step tracker and all component hooks of one transformer."""

    def __init__(self, config: CacheConfig, scheduler: Any | None, layout: ModelLayout) -> None:
        self.scheduler = scheduler
        self.resample = config.resample
        self.prune = config.prune
        self.cache_dtype = config.cache_dtype
        self.layout = layout
        self.component_hooks: list[ComponentCacheHook] = []
        self.call_check: CallCheck | None = None  # warns when a call differs from the schedule's recorded settings
        self.computed = 0
        self.reused = 0
        self.set_schedule(config.schedule)
        self.reset()

    def set_schedule(self, schedule: CacheSchedule) -> None:
        self.schedule = schedule
        self._activate(schedule)

    def _activate(self, schedule: CacheSchedule) -> None:
        """Turn the schedule that runs into the decision table the component hooks read."""
        self.active = schedule
        bits = schedule.effective()
        self.table: list[list[list[bool]]] = (self.layout.prune(bits) if self.prune else bits).tolist()

    def reset(self) -> None:
        """Forget the denoising position and every kept output: the next call starts a new generation."""
        self.step = 0
        self.pass_index = 0
        self.last_timestep: float | None = None
        self.batch_size: int | None = None
        for hook in self.component_hooks:
            hook.cache.clear()

    def advance(self, timestep: float, batch_size: int) -> None:
        """Place the transformer call that is about to run."""
        if self.last_timestep is None or timestep > self.last_timestep or batch_size != self.batch_size:
            self.reset()
            self._check_call_steps()
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
        if name in kwargs:
            return kwargs[name]
        position = self.positions.get(name)
        if position is None or position >= len(args):
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

    _is_stateful = True

    def __init__(self, state: CacheState, block: int, component: int) -> None:
        super().__init__()
        self.state = state
        self.block = block
        self.component = component
        self.cache: dict[int, Any] = {}

    @torch.compiler.disable(recursive=False)
    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        state = self.state
        if state.table[state.step][self.block][self.component] or state.pass_index not in self.cache:
            output = self.fn_ref.original_forward(*args, **kwargs)
            if state.cache_dtype is None:
                self.cache[state.pass_index] = output
            else:
                self.output_dtype = _first_tensor(output).dtype
                self.cache[state.pass_index] = _cast(output, state.cache_dtype)
            state.computed += 1
            return output
        state.reused += 1
        cached = self.cache[state.pass_index]
        return cached if state.cache_dtype is None else _cast(cached, self.output_dtype)

    def reset_state(self, module: nn.Module) -> nn.Module:
        self.cache.clear()
        return module


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

    def set_schedule(self, schedule: CacheSchedule) -> None:
        """Use another schedule of the same layout without re-installing hooks (what a search does per candidate)."""
        self.state.layout.check(schedule, type(self.transformer).__name__)
        self.state.set_schedule(schedule)
        self.state.reset()

    def reset(self) -> None:
        self.state.reset()

    def cache_bytes(self) -> int:
        """Memory the kept outputs hold now: bytes of the distinct storages behind them."""
        storages = {}
        for hook in self.state.component_hooks:
            for value in hook.cache.values():
                for tensor in _tensors(value):
                    storage = tensor.untyped_storage()
                    storages[storage.data_ptr()] = storage.nbytes()
        return sum(storages.values())

    @property
    def counts(self) -> dict[str, int]:
        """Component calls computed and replayed since the cache was enabled."""
        return {"computed": self.state.computed, "reused": self.state.reused}

    def disable(self) -> None:
        disable_cache(self.transformer)

    def __enter__(self) -> CacheHandle:
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
) -> CacheHandle:
    """Run ``target`` (a diffusers pipeline or its transformer) under a cache schedule.

    Replaces any ecad schedule already enabled on the model. With a pipeline, every call's step count is checked
    against the schedule before any compute (``resample=True`` maps the schedule to the call's step count instead
    and logs it). ``prune=False`` computes outputs nothing reads, as the paper's code did (same images, more MACs).
    ``adapter`` serves models no registered adapter knows (``ecad.GenericAdapter(...)``). A schedule file that records
    the settings it was found under is checked against the pipeline and each generation (:mod:`ecad.provenance`):
    differences are logged as warnings. Use the returned handle,
    or :func:`disable_cache`, to restore the model's own behaviour exactly::

        with ecad.enable_cache(pipe, ecad.CacheSchedule.load("fast.json")):
            image = pipe("a red circle above a blue square", num_inference_steps=20).images[0]
    """
    config = (
        schedule if isinstance(schedule, CacheConfig) else CacheConfig(schedule, resample, prune, cache_dtype)
    )
    transformer, scheduler = _split_target(target)
    adapter = get_adapter(transformer, adapter)
    layout = adapter.layout(transformer)
    layout.check(config.schedule, type(transformer).__name__)
    disable_cache(transformer)

    state = CacheState(config, scheduler, layout)
    if not isinstance(target, nn.Module):
        state.call_check = CallCheck(target)
        state.call_check.on_enable(config.schedule)
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.register_hook(StepTrackerHook(state, adapter.timestep_arg, adapter.sample_arg), _STEP_HOOK)
    for block, component, _, module in adapter.components(transformer):
        hook = ComponentCacheHook(state, block, component)
        HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, _COMPONENT_HOOK)
        state.component_hooks.append(hook)
    registry.invalidate_child_registries_cache()
    return CacheHandle(transformer, state)


def disable_cache(target: Any) -> None:
    """Remove ecad's hooks; the model behaves exactly as before :func:`enable_cache`. A no-op if not enabled."""
    transformer, _ = _split_target(target)
    for module in transformer.modules():
        registry = getattr(module, "_diffusers_hook", None)
        if registry is None:
            continue
        for name in (_STEP_HOOK, _COMPONENT_HOOK):
            registry.remove_hook(name, recurse=False)
        if not registry.hooks:
            # Drop the instance-level forward and registry so the module is as it was built.
            module.__dict__.pop("forward", None)
            del module._diffusers_hook


def active_cache(target: Any) -> CacheHandle | None:
    """The handle of the ecad cache enabled on this model, if any."""
    transformer, _ = _split_target(target)
    registry = getattr(transformer, "_diffusers_hook", None)
    hook = registry.get_hook(_STEP_HOOK) if registry is not None else None
    return CacheHandle(transformer, hook.state) if hook is not None else None
