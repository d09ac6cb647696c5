"""Quality metrics for search and evaluation, by name.

A metric is a :class:`QualityMetric` subclass registered in ``METRICS`` under its ``name``: ``ecad search --metric``
and ``ecad eval --metrics`` accept every registered name, and a metric that needs the uncached images sets
``needs_reference``; a :class:`RowMetric` averages one score per row, so candidates can be raced on some rows
(``--strategy race``). New metrics add their class to ``METRICS``.
"""

from __future__ import annotations

from typing import Any

from ..names import did_you_mean
from .base import QualityMetric, RowMetric
from .clip import ClipMetric
from .fid import FidMetric
from .fidelity import FidelityMetric
from .image_reward import ImageRewardMetric
from .pickscore import PickScoreMetric
from .tiny_reward import ShapeFidMetric, TinyRewardMetric

METRICS: dict[str, type[QualityMetric]] = {
    m.name: m
    for m in (
        FidelityMetric,
        TinyRewardMetric,
        ShapeFidMetric,
        ImageRewardMetric,
        PickScoreMetric,
        ClipMetric,
        FidMetric,
    )
}

__all__ = [
    "METRICS",
    "ClipMetric",
    "FidMetric",
    "FidelityMetric",
    "ImageRewardMetric",
    "PickScoreMetric",
    "QualityMetric",
    "RowMetric",
    "ShapeFidMetric",
    "TinyRewardMetric",
    "get_metric",
]


def get_metric(name: str, **options: Any) -> QualityMetric:
    """A quality metric by the name ``--metric`` takes.

    Args:
        name: one of ``METRICS`` (``image-reward``, ``pickscore``, ``clip``, ``fid``, ``fidelity``,
            ``tiny-reward``, ``shape-fid``).
        **options: passed to the metric's class (e.g. ``device``, ``batch_size``).

    Returns:
        The ``QualityMetric``; model-based ones load their weights on first use.
    """
    if name not in METRICS:
        raise ValueError(
            f"unknown metric {name!r}{did_you_mean(name, METRICS)}; available: {', '.join(sorted(METRICS))}."
        )
    return METRICS[name](**options)
