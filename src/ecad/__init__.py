"""ecad: evolutionary caching for diffusion transformers in diffusers.

Learn which component of which block to recompute at which denoising step (a :class:`CacheSchedule`), then run
any supported diffusers pipeline under it with :func:`enable_cache`.

The public names load on first use (PEP 562), so ``import ecad`` and the ``ecad`` command start without importing
torch and diffusers first, and a Ctrl-C while they load is handled by the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CacheConfig", "CacheHandle", "CacheSchedule", "GenericAdapter", "ScheduleError", "UnsupportedModelError",
    "active_cache", "disable_cache", "enable_cache", "full_schedule", "get_adapter", "model_layout", "register_adapter",
]
# Where each public name lives (loaded on first use).
_EXPORTS = {name: "adapters" for name in ("GenericAdapter", "UnsupportedModelError", "get_adapter", "register_adapter")}
_EXPORTS |= {name: "schedule" for name in ("CacheSchedule", "ScheduleError")}
_EXPORTS |= {name: "hooks" for name in __all__ if name not in _EXPORTS}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ecad' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from .adapters import GenericAdapter, UnsupportedModelError, get_adapter, register_adapter
    from .hooks import CacheConfig, CacheHandle, active_cache, disable_cache, enable_cache, full_schedule, model_layout
    from .schedule import CacheSchedule, ScheduleError
