"""The cache state of one transformer, and the scheduler clock that moves it through the denoising loop.

Everything a schedule decides is known before the first call (:mod:`ecad.runtime.plans`): per step, a :class:`BlockPlan`
for every block. :class:`CacheState` holds the position in the denoising loop, those plans and every kept output
(:class:`ecad.runtime.outputs.OutputCache`). The position moves outside the transformer, so that a compiled transformer
traces no decision and breaks no graph:

- :class:`SchedulerClock` on a pipeline's scheduler: ``set_timesteps`` starts a generation (and checks its step
  count), ``set_begin_index`` seats an img2img generation at the schedule's later row (it runs the last steps, the
  first one computing in full), ``step`` moves to the next row once the step's transformer passes have run.
- A bare transformer has no scheduler: each call is placed by its timestep (:class:`ecad.runtime.steps.StepClock`: a new
  timestep = next step; the same one = another pass; a larger one, a new batch size or ``handle.reset()`` = a new
  generation).

With ``prune=True`` (default) the runtime skips all work whose result nothing reads: recomputes whose output is never
read (:mod:`ecad.schedule.pruning`) and the inputs of replayed components. No output bit changes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import torch

from ..schedule import CacheSchedule, ModelLayout, ScheduleError
from .cache_arguments import as_cache_dtype, as_flag, as_schedule
from .outputs import BlockCache, OutputCache
from .plans import PlanBook, StepPlan
from .provenance import CallCheck
from .steps import NEW, STEP, StepClock

FORECAST_UNITS = ("step", "timestep")

logger = logging.getLogger(__name__)


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


def runtime_bits(schedule: CacheSchedule, layout: ModelLayout, prune: bool = True) -> torch.Tensor:
    """What the runtime computes under ``schedule``: its effective bits, less dead work when ``prune``. Two schedules
    whose runtime bits agree on rows 0..k compute steps 0..k alike and keep the same outputs (pruning looks ahead, so
    their effective bits alone do not say so)."""
    return schedule.live(layout.feeds) if prune else schedule.effective()


class CacheState:
    """Where the denoising loop is, the plans of the schedule that runs, and what is kept: shared by all hooks of one
    transformer.

    The step advances outside any traced code: on the pipeline's ``scheduler.step`` (:class:`SchedulerClock`), or,
    for a bare transformer, from the timestep of each call (:class:`ecad.runtime.steps.StepClock`: a graph break under
    ``torch.compile``). Each call then only counts its pass and hands every block its plan (:meth:`start_call`).
    """

    def __init__(
        self,
        config: CacheConfig,
        scheduler: Any | None,
        layout: ModelLayout,
        unread: tuple[tuple[int, int, int], ...],
        device: Any,
    ) -> None:
        self.scheduler = scheduler
        self.resample = config.resample
        self.prune = config.prune
        self.layout = layout
        self.unread = unread
        self.device = device  # where the parameters are: step times are made there
        self.clock_hook: SchedulerClock | None = None
        self.outputs = OutputCache(*layout.exists.shape, config.cache_dtype)
        self.blocks = [BlockCache(self, layout.component_names, config.cache_dtype) for _ in layout.block_names]
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
        """Turn the schedule that runs into its plans (:class:`ecad.runtime.plans.PlanBook`) and the tables
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

    def snapshot(self) -> list[list[list[Any]]]:
        """The outputs kept now, to :meth:`restore` later (what prefix sharing hands from one candidate to the next:
        a shallow copy, sharing the kept tensors)."""
        return self.outputs.snapshot()

    def restore(self, snapshot: list[list[list[Any]]]) -> None:
        """Keep exactly the outputs of a :meth:`snapshot` (taken at the start of the step in progress)."""
        self.outputs.restore(snapshot)

    def _begin(self, start: int) -> None:
        """A generation whose first call runs schedule row ``start``; nothing is kept yet."""
        self.outputs.clear()
        self.position, self.calls, self.pass_index, self.pending = start, 0, 0, False
        self.pass_starts: list[int] = []
        self._set_plans()
        self.checked = False
        self._set_time()

    @property
    def step(self) -> int:
        """The schedule row of the call in progress (or of the last call)."""
        return self.position - self.pending

    def start_call(self, timestep: Any) -> None:
        """Count this call's pass; from the second pass of a step on, hand each block that pass's plan and kept
        outputs (the first pass's were handed at the step's start, outside any traced call: a compiled transformer
        then writes no block). Runs inside a compiled transformer: it reads only the pass count, the plans (constants
        of the step) and tensors."""
        self.pending = False
        p = self.calls
        self.calls = p + 1
        self.pass_index = p
        if p >= len(self.pass_plans):  # more passes than kept slots: made now (a compiled call compiles again once)
            self.outputs.slots(p)
            self._set_plans()
        if p:
            self._seat_pass(p)
        if self.forecasting and self.forecast_unit == "timestep":
            self.time = timestep.reshape(-1)[0].to(torch.float64)

    def _seat_pass(self, p: int) -> None:
        """Hand each block pass ``p``'s plan at this step and the pass's kept outputs."""
        for block, block_plan, slot in zip(self.blocks, self.pass_plans[p].blocks, self.outputs.passes[p], strict=True):
            block.actions = block_plan.actions
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
        self._set_plans()
        self._set_time()

    def _set_plans(self) -> None:
        """Each pass's plan at this row (passes not started yet start fresh; as many as the kept outputs' passes: a
        compiled graph guards on the length, never on whether a pass started), the first pass's handed to the blocks."""
        started = [self.book.trajectory(start)[self.position] for start in self.pass_starts]
        self.pass_plans = started + [self.book.fresh] * (len(self.outputs.passes) - len(started))
        self._seat_pass(0)

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
        """A bare transformer's call: place it by its timestep (:class:`ecad.runtime.steps.StepClock`)."""
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
            self._set_plans()
        self.tally(self.pass_plans[self.calls])

    def _first_step(self) -> int:
        """The schedule row a new generation starts at: 0, or the scheduler's begin index (img2img skips the first
        steps of the trajectory; nothing is cached yet, so that row computes in full whatever its bits say)."""
        begin = getattr(self.scheduler, "begin_index", None)
        return begin // getattr(self.scheduler, "order", 1) if begin else 0

    def _check_call_steps(self) -> None:
        """With a pipeline's scheduler we know the call's step count up front: check it before any compute. A schedule
        activated here (resampled, or the own one back) begins the generation again: the plans handed to the blocks,
        the kept slots' depth and the step time follow the schedule that runs from its first step."""
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
        self._begin(0)


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
