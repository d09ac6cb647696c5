"""Checks of what the caching API is given (:func:`ecad.enable_cache`, :class:`ecad.CacheHandle`), so a wrong type
or a misuse is one clear error before any hook is installed, never a silent no-op.

Defined behaviour: a schedule may be given as a path; ``cache_dtype`` is a floating-point dtype; ``enable_cache``
inside a ``with ecad.enable_cache(...)`` block on the same model is refused (leaving the inner block would otherwise
remove the outer cache); a handle that was disabled or replaced refuses ``set_schedule``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..schedule import CacheSchedule
from ..validation import flag


def as_schedule(schedule: Any) -> CacheSchedule:
    """A :class:`CacheSchedule`, or the path of a schedule file (loaded here)."""
    if isinstance(schedule, CacheSchedule):
        return schedule
    if isinstance(schedule, (str, os.PathLike)):
        return CacheSchedule.load(schedule)
    raise TypeError(
        f"schedule must be an ecad.CacheSchedule or the path of a schedule file, got "
        f"{type(schedule).__name__}; for no caching use ecad.full_schedule(pipe, num_steps)."
    )


def as_cache_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        return dtype
    raise TypeError(
        f"cache_dtype must be None or a floating-point torch dtype such as torch.float16 or "
        f"torch.bfloat16, got {dtype!r}; other types would round every replayed output."
    )


def as_flag(name: str, value: Any) -> bool:
    try:
        return flag(value)
    except ValueError as err:
        raise TypeError(f"{name} {err}.") from None


def check_not_nested(active: Any) -> None:
    """``active``: the cache state installed on the model now, if any."""
    if active is not None and active.entered:
        raise RuntimeError(
            "an ecad cache is already enabled on this model by an enclosing `with ecad.enable_cache(...)` block; "
            "nested blocks are not supported: change the schedule inside it with `handle.set_schedule(...)`, or "
            "leave the block first."
        )


def check_enabled(state: Any, action: str) -> None:
    if not state.enabled:
        raise RuntimeError(
            f"cannot {action}: this cache handle was disabled (handle.disable(), the end of its `with` "
            "block, ecad.disable_cache, or a later enable_cache); call ecad.enable_cache(...) again."
        )
