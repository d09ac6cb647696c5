"""Loading diffusers and transformers models quietly: the dtype under the keyword this diffusers takes, no loading
bars or warnings of their own (ecad logs the load and its time instead)."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..names import DTYPE_NAMES

logger = logging.getLogger(__name__)

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def _dtype_keyword() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (the old name warns); older releases know only the old one."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


@contextmanager
def _loading_bars_off() -> Iterator[None]:
    """diffusers' "Loading pipeline components" and transformers' "Loading weights" bars, off while loading."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    states = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in states:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in states:
            if enabled:
                lib.enable_progress_bar()


def from_pretrained(cls: Any, source: str | Path, dtype: str | torch.dtype = "float32") -> Any:
    """``cls.from_pretrained(source)`` that prints nothing of its own: the dtype under its current keyword, the
    low-memory path only where accelerate is installed (diffusers otherwise warns that it is missing), no loading
    bars (ecad logs the load and its time instead)."""
    start = time.perf_counter()
    kwargs = {
        _dtype_keyword(): resolve_dtype(dtype),
        "low_cpu_mem_usage": importlib.util.find_spec("accelerate") is not None,
    }
    with _loading_bars_off():
        pipe = cls.from_pretrained(source, **kwargs)
    logger.debug("loaded %s in %.1f s", source, time.perf_counter() - start)
    return pipe
