"""Other libraries' caching methods as ``ecad eval`` baselines, applied through their own public APIs.

A spec is ``name:args`` (one setting) or ``name`` alone (the family's documented sweep, mild to aggressive):

| spec | method | library | default sweep |
|---|---|---|---|
| ``fbcache:THRESHOLD`` | First Block Cache | diffusers | 0.1, 0.2, 0.3, 0.5 |
| ``pab:SELF[,CROSS]`` | Pyramid Attention Broadcast | diffusers | 2,4; 3,6; 6,12 |
| ``fastercache:ATTENTION[,UNCOND]`` | FasterCache | diffusers | 2,2; 2,3; 2,5; 4,10 |
| ``taylorseer-diffusers:INTERVAL[,ORDER[,WARMUP]]`` | TaylorSeer | diffusers | 2, 3, 4 |
| ``magcache:THRESHOLD[,K]`` | MagCache (with its calibration run) | diffusers | 0.06, 0.12, 0.24, 0.5 |
| ``dbcache:Fn,Bn,THRESHOLD[,WARMUP]`` | DBCache | cache-dit | 1,0,0.16; 1,0,0.32; 1,0,0.32,4; 1,0,0.64,4 |
| ``dbcache-taylorseer:Fn,Bn,THRESHOLD[,WARMUP]`` | DBCache + TaylorSeer calibrator | cache-dit | as dbcache |

cache-dit's methods need ``pip install 'ecad[peers]'``.

The sweeps were chosen on 16 tiny-shapes training captions to span about 1.1x to 3x fewer executed MACs where a
method reaches that far (PAB and FasterCache saturate below 2x: they skip only attention, or only part of CFG).

:func:`resolve_baseline` also takes ecad's own heuristic specs (``fora:N``, ``tgate``, ... from
:func:`ecad.heuristics.baseline`), so ``ecad eval --baselines`` parses every name in one place.
"""

from __future__ import annotations

from ..adapters import ModelLayout
from ..names import did_you_mean
from ..schedule import CacheSchedule
from ..schedule.heuristics import BASELINES, baseline, parse_baseline
from . import cache_dit, diffusers_caches
from .base import Peer, PeerError, PipelineState, restored

PEERS: dict[str, type[Peer]] = {cls.family: cls for cls in (*diffusers_caches.FAMILIES, *cache_dit.FAMILIES)}


def _numbers(spec: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"baseline {spec!r}: its settings must be numbers separated by commas.") from None


def parse_peer(spec: str) -> list[Peer]:
    """Other libraries' caches as ``ecad eval`` runs them.

    Args:
        spec: one setting (``fbcache:0.1``) or a method's name alone for its default sweep (``fbcache``).

    Returns:
        The ``Peer`` objects; ``with peer.apply(pipe, call): pipe(...)`` runs one through its library's API and
        restores the pipeline exactly on exit.
    """
    name, _, args = spec.partition(":")
    cls = PEERS.get(name)
    if cls is None:
        raise ValueError(f"unknown peer method {name!r}{did_you_mean(name, PEERS)}; known: {', '.join(PEERS)}.")
    if not args:
        return [cls(_numbers(spec, setting)) for setting in cls.sweep]
    values = _numbers(spec, args)
    low, high = cls.arity
    if not low <= len(values) <= high:
        count = str(low) if low == high else f"{low} to {high}"
        raise ValueError(f"baseline {spec!r}: {name} takes {count} settings ({cls.usage}).")
    return [cls(values)]


def check_baseline(spec: str) -> list[Peer] | None:
    """Refuses a ``--baselines`` spec that names no known method or gives it bad settings; returns its peers (None
    for one of ecad's heuristics)."""
    name = spec.partition(":")[0]
    if name in BASELINES:
        parse_baseline(spec)
        return None
    if name in PEERS:
        return parse_peer(spec)
    raise ValueError(
        f"unknown baseline {spec!r}{did_you_mean(name, [*BASELINES, *PEERS])}; use ecad's no-cache, fora:N, "
        "taylorseer:N[:ORDER], tgate[:STEP], "
        f"delta-dit[:N] or a peer method: {', '.join(PEERS)} (name alone = its default sweep, name:ARGS = "
        "one setting)."
    )


def resolve_baseline(layout: ModelLayout, num_steps: int, spec: str) -> list[CacheSchedule | Peer]:
    """What ``--baselines SPEC`` evaluates: ecad heuristic schedules or peer methods."""
    peers = check_baseline(spec)
    return [baseline(layout, num_steps, spec)] if peers is None else list(peers)


__all__ = [
    "PEERS",
    "Peer",
    "PeerError",
    "PipelineState",
    "check_baseline",
    "parse_peer",
    "resolve_baseline",
    "restored",
]
