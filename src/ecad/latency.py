"""The latency cost model: seconds per (block, component) measured on the user's own device.

MACs are what the paper optimised; on real hardware small components (cross-attention over 120 tokens) cost more
time than their MACs suggest. ``measure_latency`` times one transformer call per component with synchronised
forward hooks (median of ``repeats``), and the whole call without hooks; the time outside the components is the
difference (floored at 0, since the hooks' synchronisation adds a little to each component).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .adapters import get_adapter
from .hooks import _split_target
from .schedule import CacheSchedule


@dataclass(frozen=True)
class LatencyTable:
    """Seconds of one transformer call, split over (block, component) and the rest, on one device."""

    device: str
    dtype: str
    height: int
    width: int
    batch_size: int
    block_names: tuple[str, ...]
    component_names: tuple[str, ...]
    exists: torch.Tensor
    component_seconds: torch.Tensor  # float64 [blocks, components]
    outside_seconds: float

    @property
    def full_step_seconds(self) -> float:
        return self.outside_seconds + float(self.component_seconds.sum())

    def step_seconds(self, schedule: CacheSchedule) -> list[float]:
        return schedule.step_costs(self.component_seconds, self.outside_seconds).tolist()

    def schedule_seconds(self, schedule: CacheSchedule) -> float:
        return float(sum(self.step_seconds(schedule)))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["exists"] = self.exists.tolist()
        data["component_seconds"] = self.component_seconds.tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        return cls(**{
            **data,
            "block_names": tuple(data["block_names"]),
            "component_names": tuple(data["component_names"]),
            "exists": torch.tensor(data["exists"], dtype=torch.bool),
            "component_seconds": torch.tensor(data["component_seconds"], dtype=torch.float64),
        })


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _realise(value: Any, dtype: torch.dtype, device: torch.device) -> Any:
    """Dummy inputs hold uninitialised memory: give float tensors normal values in the model's dtype."""
    if isinstance(value, dict):
        return {k: _realise(v, dtype, device) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        generator = torch.Generator(device="cpu").manual_seed(0)
        return torch.randn(value.shape, generator=generator).to(device=device, dtype=dtype)
    return value


@torch.inference_mode()
def measure_latency(
    target: Any, height: int, width: int, *, batch_size: int = 2, text_len: int | None = None,
    warmup: int = 2, repeats: int = 5,
) -> LatencyTable:
    """Time every component of ``target``'s transformer (a pipeline or the transformer) at this size and batch."""
    transformer, _ = _split_target(target)
    adapter = get_adapter(transformer)
    parameter = next(transformer.parameters())
    device, dtype = parameter.device, parameter.dtype
    config = dict(transformer.config)
    inputs = adapter.dummy_inputs(config, batch_size, height, width, text_len or adapter.default_text_len, "cpu")
    inputs = _realise(inputs, dtype, device)
    if isinstance(inputs.get(adapter.timestep_arg), torch.Tensor):
        inputs[adapter.timestep_arg] = torch.full_like(inputs[adapter.timestep_arg], 0.5 * adapter.timestep_scale)
    sync = _synchronizer(device)

    def timed_call() -> float:
        sync()
        start = time.perf_counter()
        transformer(**inputs)
        sync()
        return time.perf_counter() - start

    for _ in range(warmup):
        timed_call()
    total = statistics.median(timed_call() for _ in range(repeats))

    layout = adapter.layout(transformer)
    samples: dict[tuple[int, int], list[float]] = {}
    starts: dict[tuple[int, int], float] = {}
    handles = []
    for b, c, _, module in adapter.components(transformer):
        def pre(_module: Any, _args: Any, key: tuple[int, int] = (b, c)) -> None:
            sync()
            starts[key] = time.perf_counter()

        def post(_module: Any, _args: Any, _out: Any, key: tuple[int, int] = (b, c)) -> None:
            sync()
            samples.setdefault(key, []).append(time.perf_counter() - starts[key])

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        for _ in range(repeats):
            transformer(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    seconds = torch.zeros(layout.exists.shape, dtype=torch.float64)
    for (b, c), values in samples.items():
        seconds[b, c] = statistics.median(values)
    return LatencyTable(
        str(device), str(dtype).removeprefix("torch."), height, width, batch_size, layout.block_names,
        layout.component_names, layout.exists, seconds, max(0.0, total - float(seconds.sum())),
    )
