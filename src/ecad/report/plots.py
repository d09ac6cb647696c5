"""Static PNG plots of a run (matplotlib): the final front with every evaluated schedule and the baselines, and
the hypervolume per generation."""

from __future__ import annotations

from pathlib import Path

from ..search import speedup_label
from .data import RunData


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_front(run: RunData, path: Path) -> None:
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
    for p in baselines:
        ax.annotate(p.name, (1 / p.cost_fraction, p.quality), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"{speedup_label(run.config.cost)} (cost model; no caching = 1)")
    ax.set_ylabel(f"quality ({run.config.metric})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_hypervolume(run: RunData, path: Path) -> None:
    plt = _pyplot()
    generations = [g for g in run.generations if "hypervolume" in g.summary]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=120)
    ax.plot([g.index for g in generations], [g.summary["hypervolume"] for g in generations], ".-", c="tab:blue")
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
