"""What a search tells its user while it runs: its plan and cost before the first candidate, the time the rest will
take once candidates were measured, and one line per generation."""

from __future__ import annotations

import logging

from tqdm.auto import tqdm

from .budget import ComputeBudget
from .config import SearchConfig
from .racing import QualityRace

logger = logging.getLogger(__name__)


def say(message: str, progress: bool) -> None:
    """Print ``message`` above the progress bars, or log it when there are none."""
    tqdm.write(message) if progress else logger.info(message)


def plan(config: SearchConfig, rows: int, budget: ComputeBudget, race: QualityRace | None) -> list[str]:
    """Before the first candidate: what the configuration costs at most, in image-equivalents, and how racing and
    screening change which candidates are evaluated in full."""
    most = config.population * config.generations * rows
    cost = (
        f"compute: at most {most:g} image-equivalents ({config.population} candidates x {config.generations} "
        f"generations x {rows} rows; one = one uncached image; cached candidates, duplicates and shared "
        f"prefixes cost less)"
    )
    if budget.limit is not None:
        cost += f"; budget {budget.limit:g}, {budget.spent:.1f} spent so far"
    lines = [cost]
    if race is not None:
        rule = (
            "its mean there"
            if config.race_confidence == 0.5
            else f"a paired one-sided {config.race_confidence:g} t bound"
        )
        lines.append(
            f"race: each new candidate is scored on the first {len(race.first)} of the {rows} calibration "
            f"rows, the rest only if no cheaper front point beats it there ({rule})"
            + ("; the first generation against its own candidates" if config.race_first_generation else "")
        )
    if config.screen > 1:
        lines.append(
            f"screen: each generation makes {config.screen}x its offspring and evaluates the "
            f"{config.population} a ridge model of the evaluated schedules ranks best"
        )
    return lines


def estimate(config: SearchConfig, rows: int, budget: ComputeBudget) -> str | None:
    """After the first measured candidates: the time the rest will take on this device."""
    rate = budget.seconds_per_image()
    if rate is None:
        return None
    left = (budget.limit if budget.limit is not None else config.population * config.generations * rows) - budget.spent
    return (
        f"measured {rate:.3g} s per image-equivalent on this device: at most {max(left, 0) * rate / 60:.1f} min "
        f"for the remaining {max(left, 0):.0f} image-equivalents"
        + ("" if budget.limit is not None else " (upper bound: cached candidates cost less)")
    )
