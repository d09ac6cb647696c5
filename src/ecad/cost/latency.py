"""The latency cost model: seconds of one denoising step under a schedule, measured on the user's own device.

MACs are what the paper optimised; on real hardware small components cost more time than their MACs suggest, and
work that costs no MACs (norms, modulation, gating, the embeddings) takes time at every step. So the latency model
is measured where it runs: the transformer calls a real pipeline call makes (observed, :mod:`ecad.cost.observe`) are
replayed through ecad's own runtime (``prune=True``) under a measuring schedule in which every block meets the plans
"every component runs", "every component replays" and "only component c runs", with a timer on each block. A block
then costs, at a step, its all-run time if all its components run, else its all-replay time (the gates and residual
adds, the modulation, what its skip forward cannot leave out) plus, for each component that runs, what that
component adds (its input included). Time outside the blocks (embeddings, final layer) is paid at every step. Measured
with ``forecasts=True``, the plans "only component c forecasts" price the third action too: what a forecasting component
adds to its block's all-replay time (the extrapolation's element-wise work, which costs no MACs); a table measured
without them prices a forecast like a reuse.

Compiled (``compile``), the table prices what the compiled model costs. The timers sit around each block's call from
outside (:func:`ecad.runtime.compilation.timed_calls`), never inside a traced frame, where a timer would be a graph
break (or an error under ``fullgraph=True``) and time a model users do not run. Regional compilation keeps block
boundaries, so every block is timed compiled under every plan, exactly as above. Whole-model compilation leaves none:
each step is timed whole, compiled, and split over the blocks and the rest in the proportions the same step has
eager (measured in the same call, before compiling): the steps' totals are the compiled ones, the split between
blocks is eager's estimate. The table records how it was measured (``compile_scope``, ``compile_backend``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..adapters import get_adapter
from ..adapters.layout import split_target
from ..runtime.cache import enable_cache
from ..runtime.compilation import CompileConfig, compiled, timed_calls
from ..schedule import CacheSchedule
from .observe import TransformerCall, observe_calls, probe_call


@dataclass(frozen=True)
class LatencyTable:
    """Seconds of one denoising step, split over blocks, (block, component) and the rest, on one device."""

    device: str
    dtype: str
    height: int
    width: int
    batch_size: int
    block_names: tuple[str, ...]
    component_names: tuple[str, ...]
    exists: torch.Tensor
    component_seconds: torch.Tensor  # float64 [blocks, components]: what a running component adds to its block
    outside_seconds: float  # outside the blocks, every step
    replay_seconds: torch.Tensor  # float64 [blocks]: the block when every component replays
    full_block_seconds: torch.Tensor  # float64 [blocks]: the block when every component runs
    feeds: tuple[tuple[int, int, int], ...] = ()
    calls_per_step: int = 1
    forecast_seconds: torch.Tensor | None = None  # float64 [blocks, components]: what a forecast adds; None: 0
    compile_scope: str | None = (
        None  # how the transformer was compiled when measured ("regional", "whole"); None: eager
    )
    compile_backend: str | None = None  # torch.compile's backend then

    @property
    def compiled_as(self) -> str:
        """How it was measured, for messages: ``eager`` or e.g. ``regional (inductor)`` (as ``CompileConfig.label``)."""
        return "eager" if self.compile_scope is None else f"{self.compile_scope} ({self.compile_backend})"

    @property
    def full_step_seconds(self) -> float:
        return self.outside_seconds + float(self.full_block_seconds.sum())

    def step_seconds(self, schedule: CacheSchedule) -> list[float]:
        """Predicted seconds of every step of ``schedule`` as the runtime runs it (dead recomputes pruned)."""
        bits = schedule.live(self.feeds)
        all_run = (bits | ~self.exists).all(dim=2)  # [steps, blocks]
        partial = self.replay_seconds + (bits.double() * self.component_seconds).sum(dim=2)
        if self.forecast_seconds is not None:
            partial = partial + (self.running_forecasts(schedule, bits).double() * self.forecast_seconds).sum(dim=2)
        blocks = torch.where(all_run, self.full_block_seconds.expand_as(partial), partial)
        return (blocks.sum(dim=1) + self.outside_seconds).tolist()

    def running_forecasts(self, schedule: CacheSchedule, live: torch.Tensor) -> torch.Tensor:
        """bool ``[steps, blocks, components]``: the forecasts the runtime computes. A forecast is made when its
        output is read, so a source that only feeds a consumer (``feeds``) forecasts only where the consumer runs."""
        forecasts = schedule.effective_forecast().clone()
        for block, source, consumer in self.feeds:
            forecasts[:, block, source] &= live[:, block, consumer]
        return forecasts

    def schedule_seconds(self, schedule: CacheSchedule) -> float:
        return float(sum(self.step_seconds(schedule)))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("exists", "component_seconds", "replay_seconds", "full_block_seconds", "forecast_seconds"):
            data[name] = None if getattr(self, name) is None else getattr(self, name).tolist()
        data["feeds"] = [list(f) for f in self.feeds]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        return cls(
            **{
                **data,
                "block_names": tuple(data["block_names"]),
                "component_names": tuple(data["component_names"]),
                "exists": torch.tensor(data["exists"], dtype=torch.bool),
                "component_seconds": torch.tensor(data["component_seconds"], dtype=torch.float64),
                "replay_seconds": torch.tensor(data["replay_seconds"], dtype=torch.float64),
                "full_block_seconds": torch.tensor(data["full_block_seconds"], dtype=torch.float64),
                "feeds": tuple(tuple(f) for f in data.get("feeds", ())),
                "forecast_seconds": (
                    None
                    if data.get("forecast_seconds") is None
                    else torch.tensor(data["forecast_seconds"], dtype=torch.float64)
                ),
            }
        )


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _plans(layout: Any, forecasts: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The measuring plans, each a pair of [blocks, components] masks (recompute, forecast): all run, none runs,
    only c runs (for each component), and with ``forecasts`` only c forecasts."""
    none = torch.zeros_like(layout.exists)
    plans = [(layout.exists, none), (none, none)]
    only = []
    for c in range(len(layout.component_names)):
        mask = none.clone()
        mask[:, c] = layout.exists[:, c]
        only.append(mask)
    plans += [(mask, none) for mask in only]
    return plans + ([(none, mask) for mask in only] if forecasts else [])


def _timesteps(call: TransformerCall, name: str, position: int | None, steps: int) -> list[Any]:
    """Strictly decreasing timesteps from the observed one, so the runtime sees one new step per call."""
    first = call.argument(name, position)
    if not isinstance(first, torch.Tensor):
        return [float(first) * (steps - s) / steps for s in range(steps)]
    if first.is_floating_point():
        return [first * (steps - s) / steps for s in range(steps)]
    delta = max(int(first.max()) // (steps + 1), 1)
    return [first - s * delta for s in range(steps)]


def _with(call: TransformerCall, name: str, position: int | None, value: Any) -> tuple[tuple[Any, ...], dict]:
    args, kwargs = list(call.args), dict(call.kwargs)
    if name in kwargs or position is None or position >= len(args):
        kwargs[name] = value
    else:
        args[position] = value
    return tuple(args), kwargs


def _timed_steps(
    transformer: Any,
    adapter: Any,
    schedule: CacheSchedule,
    calls: Sequence[TransformerCall],
    timesteps: list[list[Any]],
    position: int | None,
    sync: Callable[[], None],
    blocks: list[Any],
) -> tuple[list[tuple[float, list[float]]], list, list]:
    """Run every step of ``schedule`` as one generation; per step, ``(seconds outside blocks, seconds per block)``
    (``blocks`` empty: the step's total and no split), and the handle's recompute and forecast tables."""
    block_time = [0.0] * len(blocks)

    def adder(b: int) -> Callable[[float], None]:
        return lambda seconds: block_time.__setitem__(b, block_time[b] + seconds)

    per_step: list[tuple[float, list[float]]] = []
    with contextlib.ExitStack() as timers:
        for b, block in enumerate(blocks):
            timers.enter_context(timed_calls(block, adder(b), sync))
        with enable_cache(transformer, schedule, adapter=adapter) as handle:
            # the steps are counted here, as a pipeline's scheduler counts them: no call reads its timestep's value,
            # which inside a whole-model graph would be a graph break
            handle.state.start_generation()
            for step in range(schedule.num_steps):
                block_time[:] = [0.0] * len(blocks)
                sync()
                start = time.perf_counter()
                for call, steps in zip(calls, timesteps, strict=True):
                    args, kwargs = _with(call, adapter.timestep_arg, position, steps[step])
                    transformer(*args, **kwargs)
                sync()
                total = time.perf_counter() - start
                per_step.append((total - sum(block_time), list(block_time)))
                handle.state.scheduler_step(calls[-1].argument(adapter.sample_arg, 0))
            return per_step, handle.state.table, handle.state.forecast


def _scaled(parts: tuple[float, list[float]], total: float) -> tuple[float, list[float]]:
    """An eager step's split (outside, per block) scaled to a compiled step's measured total."""
    outside, blocks = parts
    scale = total / max(outside + sum(blocks), 1e-12)
    return outside * scale, [seconds * scale for seconds in blocks]


@torch.inference_mode()
def measure_call_latency(
    target: Any,
    calls: Sequence[TransformerCall],
    height: int,
    width: int,
    *,
    warmup: int = 2,
    repeats: int = 5,
    forecasts: bool = False,
    compile: CompileConfig | None = None,
) -> LatencyTable:
    """Time the transformer of ``target`` (a pipeline or the transformer) on the observed ``calls`` of one step,
    through ecad's runtime under a measuring schedule (medians of ``repeats`` rounds after ``warmup``); with
    ``forecasts`` the forecast action is timed too (order 1, along steps); with ``compile``, compiled as it says
    (the warm-up rounds compile every plan's graphs; the model is eager again after)."""
    import inspect

    transformer, _ = split_target(target)
    adapter = get_adapter(transformer)
    layout = adapter.layout(transformer)
    parameter = next(transformer.parameters())
    device, dtype = parameter.device, parameter.dtype
    sync = _synchronizer(device)
    plans = _plans(layout, forecasts)
    # step 0 computes everything (nothing is cached yet), then warm-up and measured rounds of every plan; the "all
    # run" plan comes first in every round, so each forecast has two computed outputs to extrapolate from
    rounds = [layout.exists] + [p for p, _ in plans] * (warmup + repeats)
    forecast = [torch.zeros_like(layout.exists)] + [f for _, f in plans] * (warmup + repeats)
    schedule = CacheSchedule(
        torch.stack(rounds), layout.block_names, layout.component_names, layout.exists, forecast=torch.stack(forecast)
    )
    measured = range(1 + warmup * len(plans), schedule.num_steps)
    params = list(inspect.signature(transformer.forward).parameters)
    position = params.index(adapter.timestep_arg) if adapter.timestep_arg in params else None
    timesteps = [_timesteps(call, adapter.timestep_arg, position, schedule.num_steps) for call in calls]

    blocks = [block for *_, block, _ in adapter.blocks(transformer)]
    run = functools.partial(_timed_steps, transformer, adapter, schedule, calls, timesteps, position, sync)
    if compile is None:
        per_step, bits, forecasting = run(blocks)
    elif compile.scope == "regional":
        with compiled(transformer, compile, adapter=adapter):
            per_step, bits, forecasting = run(blocks)
    else:  # one graph per step: no block boundary left to time, so the step's total is split as eager splits it
        eager, bits, forecasting = run(blocks)
        with compiled(transformer, compile, adapter=adapter):
            totals, _, _ = run([])
        per_step = [_scaled(parts, total) for parts, (total, _) in zip(eager, totals, strict=True)]

    samples: dict[tuple[int, str | int], list[float]] = {}
    exists = layout.exists.tolist()
    for step in measured:
        for b, seconds in enumerate(per_step[step][1]):
            running = [c for c, on in enumerate(bits[step][b]) if on]
            present = [c for c, on in enumerate(exists[b]) if on]
            predicted = [c for c, on in enumerate(forecasting[step][b]) if on]
            kind: str | int | tuple[str, int] | None = (
                ("forecast", predicted[0])
                if len(predicted) == 1 and not running
                else None
                if predicted
                else "all"
                if running == present
                else "none"
                if not running
                else running[0]
                if len(running) == 1
                else None
            )
            if kind is not None:
                samples.setdefault((b, kind), []).append(seconds)
    median = {key: statistics.median(values) for key, values in samples.items()}
    replay = torch.tensor([median[(b, "none")] for b in range(len(blocks))], dtype=torch.float64)
    full = torch.tensor([median[(b, "all")] for b in range(len(blocks))], dtype=torch.float64)
    components = torch.zeros(layout.exists.shape, dtype=torch.float64)
    forecast_seconds = torch.zeros(layout.exists.shape, dtype=torch.float64) if forecasts else None
    for (b, kind), value in median.items():
        if isinstance(kind, int):
            components[b, kind] = max(0.0, value - float(replay[b]))
        elif isinstance(kind, tuple) and forecast_seconds is not None:
            forecast_seconds[b, kind[1]] = max(0.0, value - float(replay[b]))
    outside = statistics.median(per_step[step][0] for step in measured)
    sample = calls[0].argument(adapter.sample_arg, 0)
    return LatencyTable(
        str(device),
        str(dtype).removeprefix("torch."),
        height,
        width,
        int(sample.shape[0]),
        layout.block_names,
        layout.component_names,
        layout.exists,
        components,
        max(0.0, outside),
        replay,
        full,
        layout.feeds,
        len(calls),
        forecast_seconds,
        compile.scope if compile else None,
        compile.backend_name if compile else None,
    )


def measure_latency(
    pipe: Any,
    height: int,
    width: int,
    *,
    images: int = 1,
    guidance_scale: float | None = None,
    warmup: int = 2,
    repeats: int = 5,
    forecasts: bool = False,
    compile: CompileConfig | None = None,
    **call_kwargs: Any,
) -> LatencyTable:
    """Measure the latency cost model of ``pipe`` on its device: what ``ecad search --cost latency`` uses.

    Args:
        pipe: the pipeline; one real call of it is observed to get the transformer's inputs.
        height: image height in pixels.
        width: image width in pixels.
        images: images per call.
        guidance_scale: the call's guidance (``None``: the pipeline's default).
        warmup: untimed calls before timing.
        repeats: timed calls per plan.
        forecasts: also time the forecast plans (for three-action searches).
        compile: measure the transformer compiled this way (``None``: eager).
        **call_kwargs: passed to the observed pipeline call.

    Returns:
        A ``LatencyTable``: seconds per block plan and outside the blocks, which prices any schedule.
    """
    calls = observe_calls(pipe, probe_call(pipe, height, width, guidance_scale, images, **call_kwargs))
    return measure_call_latency(
        pipe, calls, height, width, warmup=warmup, repeats=repeats, forecasts=forecasts, compile=compile
    )
