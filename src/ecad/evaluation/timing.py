"""Measured end-to-end latency: warm-up, repeated timed pipeline calls, median and spread, and where it ran.

Speed numbers are measured, never estimated: every schedule or method is timed by calling the whole pipeline (text
encoding, denoising, decoding) with the same prompt batch, seeds and settings, in interleaved rounds, and the
transformer's share is timed in the same calls, synchronised, around the transformer's call (outside its compiled
frame when it is compiled: the timer adds no graph break). Speedups compare medians measured in the same process.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..models.loading import progress_bar_off
from ..runtime.compilation import timed_calls


@dataclass(frozen=True)
class Timing:
    """Seconds per pipeline call over ``repeats`` timed runs after ``warmup`` untimed ones."""

    median_s: float
    q1_s: float
    q3_s: float
    min_s: float
    max_s: float
    transformer_median_s: float
    repeats: int
    warmup: int
    batch_size: int

    @property
    def per_image_s(self) -> float:
        return self.median_s / self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_image_s": self.per_image_s}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The accelerator's or CPU's model name, for the results table."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def environment(device: torch.device) -> dict[str, Any]:
    """What a latency number depends on besides the schedule."""
    import diffusers

    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def time_pipeline(
    pipe: Any, call_kwargs: dict[str, Any], *, warmup: int = 2, repeats: int = 5, batch_size: int = 1
) -> Timing:
    """Time ``pipe(**call_kwargs)`` as it is (``batch_size`` images per call); ``call_kwargs["seed"]`` (default 0)
    seeds every call's generator."""
    kwargs = dict(call_kwargs)
    seed = kwargs.pop("seed", 0)
    timing = time_methods(pipe, kwargs, {"": nullcontext}, seeds=[seed], warmup=warmup, repeats=repeats)[""]
    return replace(timing, batch_size=batch_size)


def time_methods(
    pipe: Any,
    call_kwargs: dict[str, Any],
    methods: dict[str, Callable[[], AbstractContextManager[Any]]],
    *,
    seeds: list[int],
    warmup: int = 2,
    repeats: int = 5,
    progress: bool = False,
) -> dict[str, Timing]:
    """Time one pipeline call under each method, in interleaved rounds: every round calls every method once, in
    order, so a shared machine's drift spreads over all of them; ``warmup`` untimed rounds come first.

    ``methods`` maps a name to a function returning the context manager that applies the method (entered and left
    around each call, outside the timed region). Every call gets fresh generators seeded with ``seeds``, one per
    image, so every run does identical work.
    """
    if repeats < 1:
        raise ValueError(f"latency needs at least one timed run, got repeats={repeats}.")
    device = pipe.device
    spent = {"transformer": 0.0}

    def add(seconds: float) -> None:
        spent["transformer"] += seconds

    def call(method: Callable[[], AbstractContextManager[Any]]) -> tuple[float, float]:
        with method():
            spent["transformer"] = 0.0
            generator = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            synchronize(device)
            start = time.perf_counter()
            with torch.inference_mode():
                pipe(**call_kwargs, generator=generator if len(generator) > 1 else generator[0])
            synchronize(device)
            return time.perf_counter() - start, spent["transformer"]

    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    with progress_bar_off(pipe), timed_calls(pipe.transformer, add, partial(synchronize, device)):
        for round_index in tqdm(range(warmup + repeats), desc="latency rounds", disable=not progress):
            for name, method in methods.items():
                measured = call(method)
                if round_index >= warmup:
                    runs[name].append(measured)
    return {name: _timing(measured, warmup, len(seeds)) for name, measured in runs.items()}


def _timing(runs: list[tuple[float, float]], warmup: int, batch_size: int) -> Timing:
    totals = [total for total, _ in runs]
    q1, q3 = _quartiles(totals)
    return Timing(
        statistics.median(totals),
        q1,
        q3,
        min(totals),
        max(totals),
        statistics.median(t for _, t in runs),
        len(runs),
        warmup,
        batch_size,
    )
