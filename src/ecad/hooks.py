"""The caching runtime: diffusers ``ModelHook``s that make each component recompute, replay or forecast per the schedule.

Everything a schedule decides is known before the first call (:mod:`ecad.plans`): per step, a :class:`BlockPlan` for
every block. :class:`CacheState` holds the position in the denoising loop, those plans and every kept output
(:class:`OutputCache`). The position moves outside the transformer, so that a compiled transformer (whole or block by
block, :func:`ecad.compile_transformer`) traces no decision and breaks no graph:

- :class:`SchedulerClock` on a pipeline's scheduler: ``set_timesteps`` starts a generation (and checks its step
  count), ``set_begin_index`` seats an img2img generation at the schedule's later row (it runs the last steps, the
  first one computing in full), ``step`` moves to the next row once the step's transformer passes have run.
- :class:`StepTrackerHook` on the transformer counts the passes of a step (true CFG: each pass has its own cached
  outputs) and hands every block its plan. A bare transformer has no scheduler: each call is placed by its timestep
  (:class:`ecad.steps.StepClock`: a new timestep = next step; the same one = another pass; a larger one, a new batch
  size or ``handle.reset()`` = a new generation). That reads the timestep's value: under ``torch.compile`` it is one
  graph break per call, and ``fullgraph=True`` needs a pipeline.
- :class:`BlockSkipHook` on every block whose adapter declares a skip forward (:mod:`ecad.adapters.skip`): one
  decision per block and step. It runs that forward, which computes (and keeps) the components that run and leaves
  out the norms and modulations feeding only those that do not. :class:`ComponentCacheHook`, on the component
  modules of other blocks (or all, with ``prune=False``; PixArt: ``attn1``, ``attn2``, ``ff``), runs the module and
  keeps its raw output (a tensor or, for FLUX/SD3 joint attention, a tuple, kept as is), or
  returns the kept output, which the block then gates and adds exactly as if it had been computed; at a forecast
  step, the extrapolation of its last computed outputs.

Hooks read a block's plan and kept outputs from its :class:`BlockCache`, never the block's index, so under regional
compilation the blocks with equal plans share one graph; whole-model compilation compiles one graph per distinct
step plan (the recompile limit is raised to fit the schedule). Forecast times are tensors, so they never recompile.

With ``prune=True`` (default) the runtime skips all work whose result nothing reads: recomputes whose output is never
read (:mod:`ecad.pruning`) and the inputs of replayed components. No output bit changes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.utils.torch_utils import unwrap_module
from torch import nn

from .adapters import ModelAdapter, ModelLayout, get_adapter
from .cache_arguments import as_cache_dtype, as_flag, as_schedule, check_enabled, check_not_nested
from .adapters.skip import BlockSkip
from .plans import (
    FORECAST, RUN, SEEN_BLOCK_PLANS, SEEN_STEP_PLANS, BlockPlan, PlanBook, StepPlan, history_depth,
)
from .provenance import CallCheck
from .schedule import CacheSchedule, ScheduleError
from .steps import NEW, STEP, StepClock, argument_position, call_argument, scalar

FORECAST_UNITS = ("step", "timestep")
MIN_PASSES = 4  # passes' output slots made up front (true CFG uses two, SD3's skip-layer guidance three)

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
    """Every kept raw output, as ``passes[pass][block][component]``: the one place that holds what is cached.

    An entry is the component's last output, or, for a component that keeps a history (some step forecasts it),
    a tuple of its last computed ``(time, output)`` pairs, oldest first. ``dtype`` keeps floating outputs in a lower
    precision. The nested lists keep their identity for the cache's life (the hooks hold them), so :meth:`clear` and
    :meth:`restore` change them in place.
    """

    def __init__(self, num_blocks: int, num_components: int, dtype: torch.dtype | None = None) -> None:
        self.dtype = dtype
        self.shape = (num_blocks, num_components)
        self.passes: list[list[list[Any]]] = []
        self.depth = [[1] * num_components for _ in range(num_blocks)]
        self.slots(0)

    def set_history(self, history: torch.Tensor, order: int) -> None:
        """Keep ``order + 1`` outputs of the components marked in ``history`` (bool ``[blocks, components]``)."""
        self.depth = history_depth(history, order)

    def slots(self, pass_index: int) -> list[list[Any]]:
        """The kept outputs of one pass, by block; room is made for the pass after it too, outside any traced call
        (a compiled graph guards on the number of passes held)."""
        while len(self.passes) <= max(pass_index + 1, MIN_PASSES - 1):
            self.passes.append([[None] * self.shape[1] for _ in range(self.shape[0])])
        return self.passes[pass_index]

    def clear(self) -> None:
        for blocks in self.passes:
            for entries in blocks:
                entries[:] = [None] * len(entries)

    def snapshot(self) -> list[list[list[Any]]]:
        """What is kept now, to :meth:`restore` later (a shallow copy: a kept output is replaced by the next one, never
        changed in place, so the tensors can be shared)."""
        return [[list(entries) for entries in blocks] for blocks in self.passes]

    def restore(self, snapshot: list[list[list[Any]]]) -> None:
        self.clear()
        for p, blocks in enumerate(snapshot):
            for entries, saved in zip(self.slots(p), blocks):
                entries[:] = saved

    def kept(self) -> list[Any]:
        """The kept outputs as stored (in ``dtype`` when one is set), forecast histories included."""
        return [value for blocks in self.passes for b, entries in enumerate(blocks)
                for c, entry in enumerate(entries) if entry is not None
                for value in ((entry,) if self.depth[b][c] == 1 else tuple(v for _, v in entry))]

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


class BlockCache:
    """One block's plan for the call in progress and its kept outputs: all its hooks read (the :class:`BlockStep` a
    skip forward asks). It holds no block index, so that under ``torch.compile`` blocks with equal plans share one
    graph: a compiled block is a function of its inputs, the tensors it reads here and the plan's values.

    Args:
        clock: the cache state (its ``time`` tensor is the time forecasts extrapolate to).
        names: the block's component names to their schedule index.
        dtype: the precision kept outputs are stored in (None: as computed).
    """

    def __init__(self, clock: CacheState, names: dict[str, int], dtype: torch.dtype | None) -> None:
        self.clock = clock
        self.names = names
        self.dtype = dtype
        self.plan: BlockPlan | None = None
        self.slot: list[Any] = []
        self.dtypes: list[torch.dtype | None] = [None] * (max(names.values(), default=-1) + 1)

    def runs(self, component: str) -> bool:
        return self.plan.actions[self.names[component]][0] == RUN

    def replay(self, component: str) -> Any:
        return self.output(self.names[component])

    def compute(self, component: str, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        output = module(*args, **kwargs)
        self.keep(self.names[component], output)
        return output

    def output(self, component: int) -> Any:
        """The output of a component that does not run now: its last kept output, or its forecast."""
        action, keep, count = self.plan.actions[component]
        entry = self.slot[component]
        if keep == 1:
            return self._restore(component, entry)
        if action == FORECAST:
            kept = entry[len(entry) - count:]
            return _combine([self._restore(component, value) for _, value in kept],
                            _lagrange([time for time, _ in kept], self.clock.time))
        return self._restore(component, entry[-1][1])

    def keep(self, component: int, output: Any) -> None:
        """Keep a computed output (after the ones the plan carries over, for a component with a history)."""
        _, keep, count = self.plan.actions[component]
        if self.dtype is not None:
            self.dtypes[component] = _first_tensor(output).dtype
            output = _cast(output, self.dtype)
        if keep == 1:
            self.slot[component] = output
        else:
            entry = self.slot[component]
            carried = entry[len(entry) - count:] if count else ()
            self.slot[component] = carried + ((self.clock.time, output),)

    def _restore(self, component: int, value: Any) -> Any:
        return value if self.dtype is None else _cast(value, self.dtypes[component])


class CacheState:
    """Where the denoising loop is, the plans of the schedule that runs, and what is kept: shared by all hooks of one
    transformer.

    The step advances outside any traced code: on the pipeline's ``scheduler.step`` (:class:`SchedulerClock`), or,
    for a bare transformer, from the timestep of each call (:class:`ecad.steps.StepClock`: a graph break under
    ``torch.compile``). Each call then only counts its pass and hands every block its plan (:meth:`start_call`).
    """

    def __init__(self, config: CacheConfig, scheduler: Any | None, layout: ModelLayout,
                 names: list[dict[str, int]], unread: tuple[tuple[int, int, int], ...], device: Any) -> None:
        self.scheduler = scheduler
        self.resample = config.resample
        self.prune = config.prune
        self.layout = layout
        self.unread = unread
        self.device = device  # where the parameters are: step times are made there
        self.clock_hook: SchedulerClock | None = None
        self.outputs = OutputCache(*layout.exists.shape, config.cache_dtype)
        self.blocks = [BlockCache(self, block_names, config.cache_dtype) for block_names in names]
        self.call_check: CallCheck | None = None  # warns when a call differs from the schedule's recorded settings
        self.forecast_unit = config.forecast_unit
        self.computed = 0
        self.reused = 0
        self.forecasted = 0
        self.enabled, self.entered = True, False  # see ecad.cache_arguments
        self.clock = StepClock()
        self.set_schedule(config.schedule)
        self.reset()

    def set_schedule(self, schedule: CacheSchedule) -> None:
        self.schedule = schedule
        self._activate(schedule)

    def _activate(self, schedule: CacheSchedule) -> None:
        """Turn the schedule that runs into its plans (:class:`ecad.plans.PlanBook`) and the tables
        ``table[step][block][component]`` (recompute?) and ``forecast[step][block][component]`` that others read."""
        self.active = schedule
        self.table: list[list[list[bool]]] = runtime_bits(schedule, self.layout, self.prune).tolist()
        self.forecast: list[list[list[bool]]] = schedule.effective_forecast().tolist()
        self.outputs.set_history(schedule.history_needed(), schedule.forecast_order)
        self.book = PlanBook(self.table, self.forecast, self.outputs.depth, self.layout.exists.tolist(), self.unread)
        self.forecasting = any(d > 1 for row in self.outputs.depth for d in row)

    def reset(self) -> None:
        """Forget the denoising position and every kept output: the next call starts a new generation (by the
        timestep rule, unless the pipeline's scheduler starts one first)."""
        self.driven = False
        self.clock.reset()
        self._begin(0)

    def _begin(self, start: int) -> None:
        """A generation whose first call runs schedule row ``start``; nothing is kept yet."""
        self.outputs.clear()
        self.position, self.calls, self.pass_index, self.pending = start, 0, 0, False
        self.pass_starts: list[int] = []
        self.pass_plans = self._plans()
        self.checked = False
        self._set_time()

    @property
    def step(self) -> int:
        """The schedule row of the call in progress (or of the last call)."""
        return self.position - self.pending

    def start_call(self, timestep: Any) -> None:
        """Count this call's pass and hand each block its plan and its pass's kept outputs. Runs inside a compiled
        transformer: it reads only the pass count, the plans (constants of the step) and tensors."""
        self.pending = False
        p = self.calls
        self.calls = p + 1
        self.pass_index = p
        if p >= len(self.pass_plans):  # more passes than kept slots: made now (a compiled call compiles again once)
            self.outputs.slots(p)
            self.pass_plans = self._plans()
        plan = self.pass_plans[p]
        if self.forecasting and self.forecast_unit == "timestep":
            self.time = timestep.reshape(-1)[0].to(torch.float64)
        for block, block_plan, slot in zip(self.blocks, plan.blocks, self.outputs.passes[p]):
            block.plan = block_plan
            block.slot = slot

    def tally(self, plan: StepPlan) -> None:
        self.computed += plan.computed
        self.reused += plan.reused
        self.forecasted += plan.forecasted

    def next_step(self) -> None:
        """Close the step in progress and move to the next row: the passes seen for the first time started at this
        step (their trajectory does); in a driven generation, the last row ends the generation."""
        self.pass_starts += [self.position] * (self.calls - len(self.pass_starts))
        self.position, self.calls, self.pending = self.position + 1, 0, True
        if self.position >= self.book.num_steps:
            if self.driven:  # the pipeline's loop is over: a call without a new scheduler start is a new generation
                self.driven = False
                self.clock.reset()
                return
            raise ScheduleError(
                f"the generation runs more denoising steps than the schedule's {self.book.num_steps}; call with "
                f"num_inference_steps={self.book.num_steps}, or use `schedule.resample(N)` for N steps."
            )
        self.pass_plans = self._plans()
        self._set_time()

    def _plans(self) -> list[StepPlan]:
        """Each pass's plan at this row; passes not started yet start fresh. As long as the kept outputs' passes (a
        compiled graph guards on the length, never on whether a pass started)."""
        started = [self.book.trajectory(start)[self.position] for start in self.pass_starts]
        return started + [self.book.fresh] * (len(self.outputs.passes) - len(started))

    def _set_time(self) -> None:
        if self.forecasting and self.forecast_unit == "step":
            self.time = torch.tensor(float(self.position), dtype=torch.float64, device=self.device())

    # ---------------------------------------------------------------- the two clocks
    def start_generation(self) -> None:
        """A pipeline call starts (its scheduler's ``set_timesteps``): check its step count, then follow its
        scheduler."""
        self.reset()
        self._check_call_steps()
        self.driven = True

    def seat(self, begin_index: int) -> None:
        """The pipeline starts at a later timestep (img2img): the generation starts at that row, computing all."""
        if self.driven and self.calls == 0 and not self.pass_starts:
            self._begin(begin_index // getattr(self.scheduler, "order", 1))

    def scheduler_step(self, sample: Any) -> None:
        """The pipeline's scheduler stepped: every pass of this step has run."""
        if not self.driven or self.calls == 0:
            return
        if not self.checked and self.call_check is not None:
            self.call_check.on_generation(self.schedule, sample)
        self.checked = True
        for p in range(self.calls):
            self.tally(self.pass_plans[p])
        self.next_step()

    def place(self, timestep: float, batch_size: int, sample: Any) -> None:
        """A bare transformer's call: place it by its timestep (:class:`ecad.steps.StepClock`)."""
        kind = self.clock.place(timestep, batch_size)
        if kind == NEW:
            self._begin(0)
            self._check_call_steps()
            self._begin(self._first_step())
            if self.call_check is not None:
                self.call_check.on_generation(self.schedule, sample)
        elif kind == STEP:
            self.next_step()
        if self.calls + 1 >= len(self.pass_plans):  # room for this pass and the next
            self.outputs.slots(self.calls + 1)
            self.pass_plans = self._plans()
        self.tally(self.pass_plans[self.calls])

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


class SchedulerClock:
    """On a pipeline's scheduler (not a module, so not a ``ModelHook``): wraps ``set_timesteps`` (every diffusers
    pipeline call starts with it: a new generation), ``set_begin_index`` (img2img starts at a later row) and ``step``
    (called once per denoising step, after its transformer passes: the next row). All three run in the pipeline's
    loop, outside the transformer and so outside any compiled graph."""

    METHODS = ("set_timesteps", "set_begin_index", "step")

    def __init__(self, scheduler: Any, state: CacheState) -> None:
        self.scheduler = scheduler
        self.previous = {name: scheduler.__dict__.get(name) for name in self.METHODS}
        self.wrappers: dict[str, Any] = {}
        after = {
            "set_timesteps": lambda args, kwargs: state.start_generation(),
            "set_begin_index": lambda args, kwargs: state.seat(int(kwargs.get("begin_index", args[0] if args else 0))),
            "step": lambda args, kwargs: state.scheduler_step(kwargs.get("sample", args[2] if len(args) > 2 else None)),
        }
        for name in self.METHODS:
            original = getattr(scheduler, name, None)
            if callable(original):
                self.wrappers[name] = _wrap(original, after[name])
                setattr(scheduler, name, self.wrappers[name])

    def remove(self) -> None:
        for name, wrapper in self.wrappers.items():
            if self.scheduler.__dict__.get(name) is not wrapper:
                continue  # replaced since: leave what is there
            if self.previous[name] is None:
                del self.scheduler.__dict__[name]
            else:
                setattr(self.scheduler, name, self.previous[name])


def _wrap(original: Any, after: Any) -> Any:
    @functools.wraps(original)  # pipelines inspect its signature (custom timesteps, sigmas)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        after(args, kwargs)
        return result

    return wrapper


class StepTrackerHook(ModelHook):
    """On the transformer: starts each call (its pass, every block's plan); for a bare transformer, first places the
    call by its timestep."""

    _is_stateful = True

    def __init__(self, state: CacheState, timestep_arg: str, sample_arg: str) -> None:
        super().__init__()
        self.state = state
        self.names = (timestep_arg, sample_arg)

    def initialize_hook(self, module: nn.Module) -> nn.Module:
        for name in self.names:
            argument_position(type(module), name)  # looked up now, not inside a traced call
        return module

    def _argument(self, module: nn.Module, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            value = call_argument(module, name, args, kwargs)
        except TypeError:
            value = None
        if value is None:
            raise ScheduleError(f"ecad needs the transformer's {name!r} argument to know the denoising step.")
        return value

    @torch.compiler.disable(recursive=False)  # reads the timestep's value: a graph break, for bare transformers only
    def _place(self, module: nn.Module, timestep: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = self._argument(module, self.names[1], args, kwargs)
        self.state.place(scalar(timestep), int(sample.shape[0]), sample)

    def pre_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        state = self.state
        timestep = self._argument(module, self.names[0], args, kwargs)
        if not state.driven:
            self._place(module, timestep, args, kwargs)
        state.start_call(timestep)
        return args, kwargs

    def reset_state(self, module: nn.Module) -> nn.Module:
        self.state.reset()
        return module


class ComponentCacheHook(ModelHook):
    """On one component module of a block without a skip forward (or with ``prune=False``): compute and keep its raw
    output, or replay (or forecast) the kept one."""

    def __init__(self, cache: BlockCache, component: int) -> None:
        super().__init__()
        self.cache = cache
        self.component = component

    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        cache = self.cache
        if cache.plan.actions[self.component][0] == RUN:
            output = self.fn_ref.original_forward(*args, **kwargs)
            cache.keep(self.component, output)
            return output
        return cache.output(self.component)


class BlockSkipHook(ModelHook):
    """On one block whose adapter declares a skip forward: runs it at every step, so the block's one decision per
    step is its plan (the skip forward equals the block's own forward where everything runs, and leaves out the work
    that only feeds components that do not run elsewhere); it keeps the outputs of the components it computes."""

    def __init__(self, cache: BlockCache, skip: BlockSkip) -> None:
        super().__init__()
        self.cache = cache
        self.skip_forward = skip.forward

    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return self.skip_forward(module, self.cache, *args, **kwargs)


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


def _lagrange(times: list[torch.Tensor], time: torch.Tensor) -> list[Any]:
    """Weights of the polynomial through the kept outputs at ``time`` (Lagrange form, in float64, e.g. order 1:
    ``y1 * (1 + w) + y0 * (-w)`` with ``w = (time - t1) / (t1 - t0)``). Eager, Python floats (what the hand formula
    and ``add_``'s alpha take); compiled, float64 tensors, so that new times never recompile."""
    if not torch.compiler.is_compiling():
        times, time = [float(t) for t in times], float(time)
    weights = []
    for j, tj in enumerate(times):
        weight: Any = 1
        for m, tm in enumerate(times):
            if m != j:
                weight = weight * ((time - tm) / (tj - tm))
        weights.append(weight)
    return weights


def _combine(outputs: list[Any], weights: list[Any]) -> Any:
    """``sum(w * y)`` over outputs of the same structure (tensors, nested tuples); non-floating parts: the last's."""
    last = outputs[-1]
    if isinstance(last, torch.Tensor):
        if not last.is_floating_point():
            return last
        total = last * weights[-1]
        for output, weight in zip(outputs[:-1], weights[:-1]):
            total = total + output * weight if isinstance(weight, torch.Tensor) else total.add_(output, alpha=weight)
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
    ecad.enable_cache(...)`` block on the same model it is refused (use ``handle.set_schedule``). With a pipeline,
    every call's step count is checked against the schedule before any compute, and the denoising step follows the
    pipeline's scheduler, so ``torch.compile`` (whole model or :func:`ecad.compile_transformer`'s regional
    compilation) traces no decision: ``fullgraph=True`` works, one graph per distinct plan. A bare transformer is
    placed by the timestep of each call instead (one graph break per call when compiled). A schedule file that records
    the settings it was found under is checked against the pipeline and each generation (:mod:`ecad.provenance`):
    differences are logged as warnings.

    Args:
        target: a diffusers pipeline with a ``transformer`` (and a ``scheduler``), or the transformer itself; a
            ``torch.compile`` wrapper is looked through.
        schedule: a :class:`CacheSchedule`, the path of a schedule file, or a :class:`CacheConfig` (then the other
            settings come from it).
        resample: map the schedule to a call's step count when it differs (logged) instead of refusing the call.
        prune: skip work whose result nothing reads (same images, less compute); ``False`` computes it, as the
            paper's code did: recomputes whose output is never read and the inputs of replayed components.
        cache_dtype: a floating-point dtype to keep outputs in (less memory; replayed outputs are cast back).
        adapter: serves models no registered adapter knows (``ecad.GenericAdapter(...)``).
        forecast_unit: the time axis a forecasting schedule extrapolates along, ``"step"`` or ``"timestep"``.

    Returns:
        A :class:`CacheHandle`: swap schedules, read counts, or disable the cache (also as a context manager), which
        restores the model's own behaviour exactly.

    Example:

    ```python
    with ecad.enable_cache(pipe, ecad.CacheSchedule.load("fast.json")):
        image = pipe("a red circle above a blue square", num_inference_steps=20).images[0]
    ```
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

    names: list[dict[str, int]] = [{} for _ in layout.block_names]
    for block, component, _, _ in adapter.components(transformer):
        names[block][layout.component_names[component]] = component
    shared: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}
    names = [shared.setdefault(tuple(n.items()), n) for n in names]  # one dict per block kind
    skips = adapter.block_skips(transformer) if config.prune else []
    skipping = {block for block, *_ in skips}
    unread = tuple(feed for feed in layout.feeds if feed[0] in skipping)
    state = CacheState(config, scheduler, layout, names, unread, functools.partial(_device, transformer))
    if not isinstance(target, nn.Module):
        state.call_check = CallCheck(target)
        state.call_check.on_enable(config.schedule)
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.register_hook(StepTrackerHook(state, adapter.timestep_arg, adapter.sample_arg), _STEP_HOOK)
    for block, component, _, module in adapter.components(transformer):
        if block not in skipping:
            HookRegistry.check_if_exists_or_initialize(module).register_hook(
                ComponentCacheHook(state.blocks[block], component), _COMPONENT_HOOK)
    for block, module, skip, _ in skips:
        HookRegistry.check_if_exists_or_initialize(module).register_hook(
            BlockSkipHook(state.blocks[block], skip), _BLOCK_HOOK)
    registry.invalidate_child_registries_cache()
    if scheduler is not None and callable(getattr(scheduler, "set_timesteps", None)):
        state.clock_hook = SchedulerClock(scheduler, state)
    allow_recompiles(state.book)
    return CacheHandle(transformer, state)


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
        logger.info("ecad: torch._dynamo.config.recompile_limit raised from %d to %d for the schedules' plans",
                    config.recompile_limit, needed)
        config.recompile_limit = needed
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 4 * needed)


def disable_cache(target: Any) -> None:
    """Remove ecad's hooks; the model behaves exactly as before :func:`enable_cache`. A no-op if not enabled."""
    transformer, _ = _split_target(target)
    state = _installed_state(transformer)
    if state is not None:
        state.enabled = False
        if state.clock_hook is not None:
            state.clock_hook.remove()
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
