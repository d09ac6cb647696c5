"""The run report: a self-contained interactive HTML page of a search's fronts, plus PNG plots.

The names below are imported on first use (PEP 562): a running search draws its front with :mod:`.plots`, which must
not import the modules that read search runs (they import the search).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunData": "data",
    "load_run": "data",
    "pareto_front": "data",
    "build_report": "html",
    "schedule_image": "pictures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
