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
    "GenericAdapter": "adapters", "UnsupportedModelError": "adapters", "get_adapter": "adapters",
    "register_adapter": "adapters",
    "CacheConfig": "state", "CacheHandle": "cache", "active_cache": "cache", "disable_cache": "cache",
    "enable_cache": "cache", "full_schedule": "adapters.layout", "model_layout": "adapters.layout",
    "CacheSchedule": "schedule", "ScheduleError": "schedule", "compile_transformer": "compilation",
    "enable_cache_experts": "experts",
}

# Submodules reachable as attributes after a plain ``import ecad`` (``ecad.tiny_shapes.load_pipeline()``).
_SUBMODULES = ("evaluation", "generation", "heuristics", "loading", "macs", "metrics", "observe", "prompts",
               "provenance", "report", "search", "tiny_shapes")

__all__ = [
    "CacheConfig", "CacheHandle", "CacheSchedule", "GenericAdapter", "ScheduleError", "UnsupportedModelError",
    "active_cache", "compile_transformer", "disable_cache", "enable_cache", "enable_cache_experts", "full_schedule",
    "get_adapter", "model_layout", "register_adapter",
]

if TYPE_CHECKING:
    from .adapters import GenericAdapter, UnsupportedModelError, get_adapter, register_adapter
    from .compilation import compile_transformer
    from .adapters.layout import full_schedule, model_layout
    from .cache import CacheHandle, active_cache, disable_cache, enable_cache
    from .experts import enable_cache_experts
    from .schedule import CacheSchedule, ScheduleError
    from .state import CacheConfig


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ecad' has no attribute {name!r}")
    if _EXPORTS[name] == "schedule":  # with the model families' names for their paper files registered
        importlib.import_module(".adapters", __name__)
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])
