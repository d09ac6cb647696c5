"""ecad: evolutionary caching for diffusion transformers in diffusers.

Learn which component of which block to recompute at which denoising step (a :class:`CacheSchedule`), then run
any supported diffusers pipeline under it with :func:`enable_cache`.

The public names are imported on first use (PEP 562), so ``import ecad`` and the command line's ``--help`` do not
load torch and diffusers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "GenericAdapter": "adapters",
    "UnsupportedModelError": "adapters",
    "get_adapter": "adapters",
    "register_adapter": "adapters",
    "CacheConfig": "runtime.state",
    "CacheHandle": "runtime.cache",
    "active_cache": "runtime.cache",
    "disable_cache": "runtime.cache",
    "enable_cache": "runtime.cache",
    "full_schedule": "adapters.layout",
    "model_layout": "adapters.layout",
    "CacheSchedule": "schedule",
    "ScheduleError": "schedule",
    "compile_transformer": "runtime.compilation",
    "enable_cache_experts": "runtime.experts",
}

# Modules reachable as attributes after a plain ``import ecad`` (``ecad.tiny_shapes.load_pipeline()``), by the short
# names users type, and where they live.
_SUBMODULES = {
    "evaluation": "evaluation",
    "experts": "runtime.experts",
    "generation": "generation",
    "heuristics": "schedule.heuristics",
    "latency": "cost.latency",
    "loading": "models.loading",
    "macs": "models.macs",
    "metrics": "metrics",
    "observe": "cost.observe",
    "prompts": "models.prompts",
    "provenance": "runtime.provenance",
    "report": "report",
    "search": "search",
    "tiny_shapes": "models.tiny_shapes",
}

__all__ = [
    "CacheConfig",
    "CacheHandle",
    "CacheSchedule",
    "GenericAdapter",
    "ScheduleError",
    "UnsupportedModelError",
    "active_cache",
    "compile_transformer",
    "disable_cache",
    "enable_cache",
    "enable_cache_experts",
    "full_schedule",
    "get_adapter",
    "model_layout",
    "register_adapter",
]

if TYPE_CHECKING:
    from .adapters import GenericAdapter, UnsupportedModelError, get_adapter, register_adapter
    from .adapters.layout import full_schedule, model_layout
    from .runtime.cache import CacheHandle, active_cache, disable_cache, enable_cache
    from .runtime.compilation import compile_transformer
    from .runtime.experts import enable_cache_experts
    from .runtime.state import CacheConfig
    from .schedule import CacheSchedule, ScheduleError


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ecad' has no attribute {name!r}")
    if _EXPORTS[name] == "schedule":  # with the model families' names for their paper files registered
        importlib.import_module(".adapters", __name__)
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])
