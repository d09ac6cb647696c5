"""Measured end-to-end latency: warm-up, repeated timed pipeline calls, median and spread, and where it ran.

Speed numbers are measured, never estimated: every schedule is timed by calling the whole pipeline (text encoding,
denoising, decoding) with the same prompt batch, seed and settings, and the transformer's share is timed in the same
calls with synchronised forward hooks. Speedups compare medians measured in the same process.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..loading import progress_bar_off


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
        "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
        "diffusers": diffusers.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
    }


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def time_pipeline(pipe: Any, call_kwargs: dict[str, Any], *, warmup: int = 2, repeats: int = 5,
                  batch_size: int = 1) -> Timing:
    """Time ``pipe(**call_kwargs)``; a fresh seeded generator per call keeps every run's work identical."""
    if repeats < 1:
        raise ValueError(f"latency needs at least one timed run, got repeats={repeats}.")
    device = pipe.device
    seed = call_kwargs.pop("seed", 0)
    spent = {"transformer": 0.0}
    started: list[float] = []

    def pre(*_: Any) -> None:
        synchronize(device)
        started.append(time.perf_counter())

    def post(*_: Any) -> None:
        synchronize(device)
        spent["transformer"] += time.perf_counter() - started.pop()

    def call() -> tuple[float, float]:
        spent["transformer"] = 0.0
        generator = torch.Generator("cpu").manual_seed(seed)
        synchronize(device)
        start = time.perf_counter()
        with torch.inference_mode():
            pipe(**call_kwargs, generator=generator)
        synchronize(device)
        return time.perf_counter() - start, spent["transformer"]

    handles = [pipe.transformer.register_forward_pre_hook(pre), pipe.transformer.register_forward_hook(post)]
    try:
        with progress_bar_off(pipe):
            for _ in range(warmup):
                call()
            runs = [call() for _ in range(repeats)]
    finally:
        for handle in handles:
            handle.remove()
    totals = [total for total, _ in runs]
    q1, q3 = _quartiles(totals)
    return Timing(statistics.median(totals), q1, q3, min(totals), max(totals),
                  statistics.median(t for _, t in runs), repeats, warmup, batch_size)
