"""Cache schedules and their files, with no model knowledge: :class:`CacheSchedule` (which component of which block
recomputes, reuses or forecasts at which step), :class:`ModelLayout` (the axes a schedule is made for), ecad's file
format and the ECAD paper's, dead-recompute pruning and the baseline schedules (``ecad.schedule.heuristics``)."""

from .cache_schedule import ACTION_CHARS, FORECAST_ORDERS, CacheSchedule, register_paper_naming, schedule_key
from .fields import ScheduleError
from .layout import ModelLayout
from .paper import PaperNaming

__all__ = [
    "ACTION_CHARS",
    "FORECAST_ORDERS",
    "CacheSchedule",
    "ModelLayout",
    "PaperNaming",
    "ScheduleError",
    "register_paper_naming",
    "schedule_key",
]
