"""ecad: evolutionary caching for diffusion transformers in diffusers.

Learn which component of which block to recompute at which denoising step (a :class:`CacheSchedule`), then run
any supported diffusers pipeline under it with :func:`enable_cache`.
"""

from .adapters import GenericAdapter, UnsupportedModelError, get_adapter, register_adapter
from .hooks import CacheConfig, CacheHandle, active_cache, disable_cache, enable_cache, full_schedule, model_layout
from .schedule import CacheSchedule, ScheduleError

__version__ = "0.1.0"

__all__ = [
    "CacheConfig", "CacheHandle", "CacheSchedule", "GenericAdapter", "ScheduleError", "UnsupportedModelError", "active_cache",
    "disable_cache", "enable_cache", "full_schedule", "get_adapter", "model_layout", "register_adapter",
]
