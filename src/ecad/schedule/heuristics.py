"""Hand-made cache schedules: the baselines ECAD is compared with and the seeds of its initial population.

Every heuristic takes a model's :class:`~ecad.adapters.ModelLayout` (``ecad.model_layout(pipe)``) and a step count,
so it works for every supported architecture; bits of components a block lacks stay off.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import torch

from ..names import did_you_mean
from .cache_schedule import FORECAST_ORDERS, CacheSchedule
from .layout import ModelLayout


def _schedule(layout: ModelLayout, bits: torch.Tensor, name: str) -> CacheSchedule:
    return layout.full_schedule(bits.shape[0]).like(bits, name=name, heuristic=name)


def _forecasting(schedule: CacheSchedule, order: int) -> CacheSchedule:
    """``schedule`` with every reuse turned into a forecast of polynomial ``order``."""
    return dataclasses.replace(schedule, forecast=schedule.exists & ~schedule.recompute, forecast_order=order)


def _every(num_steps: int, n: int) -> torch.Tensor:
    if n < 1:
        raise ValueError(f"an interval must be >= 1, got {n}.")
    return torch.arange(num_steps) % n == 0


def no_cache(layout: ModelLayout, num_steps: int) -> CacheSchedule:
    """Recompute everything: full quality, full cost."""
    return _schedule(layout, layout.exists.expand(num_steps, -1, -1).clone(), "no-cache")


def fora(layout: ModelLayout, num_steps: int, n: int) -> CacheSchedule:
    """FORA: recompute every component every ``n`` steps, reuse everything in between."""
    bits = _every(num_steps, n)[:, None, None] & layout.exists
    return _schedule(layout, bits, f"fora-{n}")


def taylorseer(layout: ModelLayout, num_steps: int, n: int, order: int = 1) -> CacheSchedule:
    """TaylorSeer: recompute every component every ``n`` steps, forecast everything in between (polynomial
    ``order`` through the last computed outputs; until two outputs are computed a forecast is a reuse)."""
    name = f"taylorseer-{n}" + (f"-order{order}" if order != 1 else "")
    schedule = _forecasting(fora(layout, num_steps, n), order)
    return schedule.with_metadata({**schedule.metadata, "name": name, "heuristic": name})


def component_interval(layout: ModelLayout, num_steps: int, component: str, n: int) -> CacheSchedule:
    """Cache one component type: it recomputes every ``n`` steps, all others every step."""
    if component not in layout.component_names:
        raise ValueError(f"unknown component {component!r}; this model has {list(layout.component_names)}.")
    bits = layout.exists.expand(num_steps, -1, -1).clone()
    c = layout.component_names.index(component)
    bits[:, :, c] &= _every(num_steps, n)[:, None]
    return _schedule(layout, bits, f"{component}-every-{n}")


def delta_dit(layout: ModelLayout, num_steps: int, n: int = 2, boundary: int | None = None) -> CacheSchedule:
    """Delta-DiT style: rear blocks are cached early (they shape details), front blocks late (they shape layout).

    Before ``boundary`` (default: half the steps) the rear half of the blocks recomputes every ``n`` steps; from it
    on, the front half does. The other half recomputes every step.
    """
    boundary = num_steps // 2 if boundary is None else boundary
    blocks = len(layout.block_names)
    rear = torch.arange(blocks) >= blocks // 2
    early = torch.arange(num_steps) < boundary
    cached_blocks = torch.where(early[:, None], rear[None, :], ~rear[None, :])  # [steps, blocks]
    keep = ~cached_blocks | _every(num_steps, n)[:, None]
    return _schedule(layout, keep[:, :, None] & layout.exists, f"delta-dit-{n}")


def tgate(layout: ModelLayout, num_steps: int, gate_step: int | None = None) -> CacheSchedule:
    """TGATE style: cross-attention recomputes until ``gate_step`` (default: 40% of the steps), then is reused."""
    if not layout.cross_attention:
        raise ValueError("this model has no separate cross-attention component; TGATE does not apply to it.")
    gate_step = max(1, round(0.4 * num_steps)) if gate_step is None else gate_step
    bits = layout.exists.expand(num_steps, -1, -1).clone()
    for component in layout.cross_attention:
        bits[gate_step:, :, layout.component_names.index(component)] = False
    return _schedule(layout, bits, f"tgate-{gate_step}")


def random_schedule(layout: ModelLayout, num_steps: int, density: float, seed: int = 0) -> CacheSchedule:
    """Each existing bit recomputes with probability ``density`` (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    bits = (torch.rand(num_steps, *layout.exists.shape, generator=generator) < density) & layout.exists
    return _schedule(layout, bits, f"random-{density:g}-{seed}")


def initial_population(
    layout: ModelLayout,
    num_steps: int,
    size: int,
    seed: int = 0,
    fora_intervals: Sequence[int] = (2, 3, 4, 5, 7, 10, 20),
    forecast_order: int | None = None,
) -> list[CacheSchedule]:
    """The paper's seeds, then random schedules of spread densities up to ``size`` (duplicates removed).

    With ``forecast_order`` (a search over three actions) a TaylorSeer seed follows each FORA seed of the same
    interval, and the random schedules forecast a third of the bits they do not recompute.
    """
    seeds = [no_cache(layout, num_steps)]
    for n in (n for n in fora_intervals if n < num_steps):
        seeds.append(fora(layout, num_steps, n))
        if forecast_order is not None and n > 1:
            seeds.append(taylorseer(layout, num_steps, n, forecast_order))
    seeds += [component_interval(layout, num_steps, c, 2) for c in layout.component_names]
    seeds.append(delta_dit(layout, num_steps))
    if layout.cross_attention:
        seeds.append(tgate(layout, num_steps))
    unique: list[CacheSchedule] = []
    for schedule in seeds:
        if schedule not in unique:
            unique.append(schedule)
    index = 0
    while len(unique) < size:
        density = 0.1 + 0.8 * ((index * 0.618034) % 1.0)
        candidate = random_schedule(layout, num_steps, density, seed=seed * 100_003 + index)
        if forecast_order is not None:
            candidate = _forecasting(candidate, forecast_order)
            coin = torch.rand(candidate.shape, generator=torch.Generator().manual_seed(seed * 7_919 + index)) < 1 / 3
            candidate = dataclasses.replace(candidate, forecast=candidate.forecast & coin)
        if candidate not in unique:
            unique.append(candidate)
        index += 1
    return unique[:size]


BASELINES = {"no-cache": no_cache, "fora": fora, "taylorseer": taylorseer, "tgate": tgate, "delta-dit": delta_dit}
_MAX_ARGUMENTS = {"no-cache": 0, "fora": 1, "taylorseer": 2, "tgate": 1, "delta-dit": 1}


def parse_baseline(spec: str) -> tuple[str, list[int]]:
    """``"fora:3"`` -> ``("fora", [3])``, ``"taylorseer:3:2"`` -> ``("taylorseer", [3, 2])``; refuses unknown names
    and arguments that are not whole numbers >= 1."""
    name, colon, rest = spec.partition(":")
    args = rest.split(":") if colon else []
    if name not in BASELINES:
        raise ValueError(
            f"unknown baseline {spec!r}{did_you_mean(name, BASELINES)}; use one of no-cache, fora:N, "
            "taylorseer:N[:ORDER], "
            "tgate[:STEP], delta-dit[:N]."
        )
    if name in ("fora", "taylorseer") and not args:
        raise ValueError(f"{name} needs its interval, e.g. {name}:3.")
    if len(args) > _MAX_ARGUMENTS[name]:
        raise ValueError(f"baseline {name} takes {_MAX_ARGUMENTS[name] or 'no'} argument(s), got {spec!r}.")
    if not all(re.fullmatch("[0-9]+", arg) and int(arg) >= 1 for arg in args):
        raise ValueError(f"baseline {spec!r}: the argument must be a whole number >= 1, e.g. fora:3.")
    if name == "taylorseer" and len(args) == 2 and int(args[1]) not in FORECAST_ORDERS:
        raise ValueError(f"baseline {spec!r}: the forecast order must be one of {FORECAST_ORDERS}.")
    return name, [int(arg) for arg in args]


def baseline(layout: ModelLayout, num_steps: int, spec: str) -> CacheSchedule:
    """A heuristic schedule by the name ``ecad eval --baselines`` takes.

    Args:
        layout: the model's axes, ``ecad.model_layout(pipe)``.
        num_steps: denoising steps.
        spec: ``no-cache``, ``fora:N``, ``taylorseer:N[:ORDER]``, ``tgate[:GATE_STEP]`` or ``delta-dit[:N]``.

    Returns:
        The ``CacheSchedule``, named after the spec in its metadata.

    Example:
        ```python
        schedule = ecad.heuristics.baseline(ecad.model_layout(pipe), 20, "fora:2")  # recompute every 2nd step
        ```
    """
    name, args = parse_baseline(spec)
    return BASELINES[name](layout, num_steps, *args)
