"""Quality metrics for search and evaluation, by name."""

from __future__ import annotations

from typing import Any

from .base import QualityMetric
from .clip import ClipMetric
from .fidelity import FidelityMetric
from .image_reward import ImageRewardMetric

METRICS: dict[str, type[QualityMetric]] = {
    m.name: m for m in (FidelityMetric, ImageRewardMetric, ClipMetric)
}

__all__ = ["METRICS", "ClipMetric", "FidelityMetric", "ImageRewardMetric", "QualityMetric", "get_metric"]


def get_metric(name: str, **options: Any) -> QualityMetric:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))}.")
    return METRICS[name](**options)
