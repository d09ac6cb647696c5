"""Static PNG plots of a run (matplotlib): the final front with every evaluated schedule and the baselines, and
the hypervolume per generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..search import speedup_label
from .data import RunData


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def place_labels(ax: Any, points: list[tuple[float, float, str]], step: float = 9.0) -> list[Any]:
    """Annotate each ``(x, y, text)`` beside its point (on its left where the right side would leave the axes),
    moving a label up (in points) until it overlaps no label placed before it: baselines often sit close together
    (FORA-10 and FORA-20 at almost no quality)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    right_edge = ax.get_window_extent(renderer).x1
    placed, boxes = [], []
    for x, y, text in sorted(points, key=lambda p: (p[1], p[0])):
        offset, side = 4.0, 1
        for _ in range(40):
            label = ax.annotate(text, (x, y), fontsize=7, xytext=(4 * side, offset), textcoords="offset points",
                                ha="left" if side > 0 else "right")
            box = label.get_window_extent(renderer).expanded(1.02, 1.05)
            if side > 0 and box.x1 > right_edge:
                label.remove()
                side = -1
                continue
            if not any(box.overlaps(other) for other in boxes):
                break
            label.remove()
            offset += step
        placed.append(label)
        boxes.append(box)
    return placed


def plot_front(run: RunData, path: Path) -> list[Any]:
    """Write the front plot; returns the baseline labels (placed so that none overlaps another)."""
    plt = _pyplot()
    points = list(run.points.values())
    front = [run.points[k] for k in run.generations[-1].front]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.scatter([1 / p.cost_fraction for p in points], [p.quality for p in points], s=8, c="0.7", label="evaluated")
    ax.plot([1 / p.cost_fraction for p in front], [p.quality for p in front], "o-", c="tab:red", ms=4,
            label=f"front after generation {run.generations[-1].index}")
    baselines = [run.points[k] for k in run.baselines]
    ax.scatter([1 / p.cost_fraction for p in baselines], [p.quality for p in baselines], marker="D", s=28,
               c="goldenrod", edgecolors="saddlebrown", label="baselines", zorder=3)
    ax.set_xlabel(f"{speedup_label(run.config.cost)} (cost model; no caching = 1)")
    ax.set_ylabel(f"quality ({run.config.metric})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    labels = place_labels(ax, [(1 / p.cost_fraction, p.quality, p.name) for p in baselines])
    fig.savefig(path)
    plt.close(fig)
    return labels


def plot_hypervolume(run: RunData, path: Path) -> list[float]:
    """Write the hypervolume plot; returns its generation ticks (whole generations only)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    generations = [g for g in run.generations if "hypervolume" in g.summary]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=120)
    ax.plot([g.index for g in generations], [g.summary["hypervolume"] for g in generations], ".-", c="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    ticks = [float(t) for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    fig.savefig(path)
    plt.close(fig)
    return ticks
