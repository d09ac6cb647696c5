"""The run report: a self-contained interactive HTML page of a search's fronts, plus PNG plots."""

from .data import RunData, load_run, pareto_front
from .html import build_report
from .pictures import schedule_image

__all__ = ["RunData", "build_report", "load_run", "pareto_front", "schedule_image"]
