"""Evaluation: schedules and baselines on held-out prompts, with quality metrics, MACs and measured latency."""

from .images import ImageStore
from .results import read_results
from .runner import EvalConfig, evaluate
from .timing import Timing, device_name, time_pipeline

__all__ = ["EvalConfig", "ImageStore", "Timing", "device_name", "evaluate", "read_results", "time_pipeline"]
