"""Which front schedule to use: the fastest one whose quality stays within a stated loss of no caching.

A Pareto front runs from the cheapest schedule (``front/000.json``: fastest, usually useless) to the most expensive
(closest to no caching). A person picks the fastest point that is still about as good as no caching; this module
makes that choice, says why, and writes the command that uses it. ``ecad demo``, ``ecad front`` and the report use it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_LOSS = 0.05  # at most 5% of no caching's quality lost


@dataclass(frozen=True)
class Suggestion:
    """The chosen front row, and what it was compared with."""

    row: dict[str, Any]
    reference_quality: float | None  # no caching's quality on the same rows, if the run evaluated it
    max_loss: float
    within: bool  # whether ``row`` is within ``max_loss`` of no caching

    def reason(self, metric: str, speedup_label: str = "MAC speedup") -> str:
        row, loss = self.row, f"{self.max_loss:.0%}"
        numbers = f"{metric} {row['quality']:.4f}, {row['speedup']:.2f}x {speedup_label}"
        if self.reference_quality is None:
            return f"{row['file']} has the best {metric} on the front ({numbers}); no caching was not evaluated."
        uncached = f"no caching {self.reference_quality:.4f}"
        if self.within:
            return (
                f"{row['file']} is the fastest front schedule whose {metric} is at most {loss} below no "
                f"caching's ({numbers}; {uncached})."
            )
        return (
            f"no front schedule is within {loss} of no caching's {metric} ({uncached}); {row['file']} has the "
            f"best ({numbers})."
        )


def quality_floor(reference: float, max_loss: float) -> float:
    """The lowest quality within ``max_loss`` of ``reference``: a fraction of its size, so it works for
    probabilities, SSIM and negated distances (-FID) alike."""
    return reference - max_loss * abs(reference)


def suggest(
    front: list[dict[str, Any]], reference_quality: float | None, max_loss: float = DEFAULT_MAX_LOSS
) -> Suggestion | None:
    """The fastest row of ``front`` (rows with ``quality``, ``speedup``, ``file``) whose quality is at most
    ``max_loss`` below ``reference_quality``; if none is (or the reference is unknown), the best-quality row."""
    if not front:
        return None
    if max_loss < 0:
        raise ValueError(f"the allowed quality loss must be >= 0, got {max_loss}.")
    best = max(front, key=lambda r: (r["quality"], r["speedup"]))
    if reference_quality is None:
        return Suggestion(best, None, max_loss, False)
    floor = quality_floor(reference_quality, max_loss)
    good = [r for r in front if r["quality"] >= floor]
    if not good:
        return Suggestion(best, reference_quality, max_loss, False)
    return Suggestion(max(good, key=lambda r: (r["speedup"], r["quality"])), reference_quality, max_loss, True)


def generate_command(model: str, schedule_file: str | Path, prompt: str, out: str = "image.png") -> str:
    """A ready-to-copy ``ecad generate`` line; steps, guidance and size come from the schedule file's metadata."""
    return (
        f"ecad generate --model {shlex.quote(model)} --schedule {shlex.quote(str(schedule_file))} "
        f"--prompt {shlex.quote(prompt)} --out {shlex.quote(out)}"
    )


def calibration_note(
    front: list[dict[str, Any]], reference_quality: float | None, rows: int, metric: str
) -> str | None:
    """When cached schedules score above no caching, the calibration set is too small to rank them: say so."""
    if reference_quality is None:
        return None
    above = [r for r in front if r["quality"] > reference_quality]
    if not above:
        return None
    return (
        f"{len(above)} cached schedule(s) score above no caching ({metric} {reference_quality:.4f}) on these "
        f"{rows} calibration rows: on so few rows such differences are noise. Compare them on held-out prompts "
        f"with `ecad eval` (for tiny-shapes: --prompts tiny-shapes-heldout) before trusting the ranking."
    )
