"""What a search run directory says, arranged for the report: points, per-generation fronts, baselines.

Each generation file lists the schedules evaluated in that generation (their keys, heuristic names, quality and cost
as a fraction of no caching). The front of generation g is computed here as the non-dominated set of every feasible
schedule evaluated up to g (feasible: reuses at least one output, the search's constraint), so each generation's
front can be shown, not just the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..adapters import ModelLayout
from ..schedule import CacheSchedule
from ..search import CorruptRunError, RunDirectory, SearchConfig
from ..search.store import schedule_from_key


@dataclass
class Point:
    key: str
    quality: float
    cost_fraction: float
    first_generation: int
    name: str | None = None
    feasible: bool = True


@dataclass
class Generation:
    index: int
    population: list[str]  # keys evaluated in this generation
    front: list[str]  # keys of the front up to this generation, by increasing cost
    summary: dict[str, Any]


@dataclass
class RunData:
    path: Path
    config: SearchConfig
    layout: ModelLayout
    points: dict[str, Point]
    generations: list[Generation]
    baselines: list[str] = field(default_factory=list)  # keys of the named heuristic seeds

    def schedule(self, key: str) -> CacheSchedule:
        return schedule_from_key(key, self.layout)


def pareto_front(points: list[Point]) -> list[Point]:
    """Non-dominated points (higher quality, lower cost), by increasing cost; equal objectives are all kept."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.cost_fraction, -p.quality)):
        last = front[-1] if front else None
        if (
            last is None
            or point.quality > last.quality
            or (point.quality == last.quality and point.cost_fraction == last.cost_fraction)
        ):
            front.append(point)
    return front


def _layout(run: RunDirectory) -> ModelLayout:
    """The schedule axes, from a front schedule file (the run directory holds no model)."""
    rows = run.read_front()["front"]
    if not rows:
        raise CorruptRunError(f"{run.path}/front.json lists no schedules; the report needs at least one.")
    template = CacheSchedule.load(str(run.path / rows[0]["file"]))
    return ModelLayout(template.block_names, template.component_names, template.exists)


def load_run(path: str | Path) -> RunData:
    run = RunDirectory(path)
    config = run.load_config()
    layout = _layout(run)
    files = sorted((run.path / "generations").glob("[0-9][0-9][0-9][0-9].json"))
    if not files:
        raise CorruptRunError(f"{run.path} has no generations/NNNN.json yet; run `ecad search` first.")
    points: dict[str, Point] = {}
    generations: list[Generation] = []
    for file in files:
        data = run.read_generation(file)
        index = data["generation"]
        for row in data["population"]:
            if row["key"] not in points:
                try:
                    schedule = schedule_from_key(row["key"], layout)
                except CorruptRunError as err:
                    raise CorruptRunError(f"{file}: {err} Resume the search to write it again.") from None
                full = bool(torch.equal(schedule.effective(), layout.full_schedule(schedule.num_steps).recompute))
                points[row["key"]] = Point(
                    row["key"], row["quality"], row["cost_fraction"], index, row.get("name"), not full
                )
        seen = [p for p in points.values() if p.feasible]
        front = [p.key for p in pareto_front(seen)]
        generations.append(
            Generation(index, list(dict.fromkeys(r["key"] for r in data["population"])), front, data.get("summary", {}))
        )
    baselines = [p.key for p in points.values() if p.name and p.first_generation == generations[0].index]
    return RunData(run.path, config, layout, points, generations, baselines)


def shown_generations(generations: list[Generation], limit: int) -> list[Generation]:
    """At most ``limit`` generations, evenly spaced, always with the first and the last."""
    if len(generations) <= limit:
        return generations
    step = (len(generations) - 1) / (limit - 1)
    return [generations[round(i * step)] for i in range(limit)]
