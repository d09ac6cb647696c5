"""Static PNG plots (matplotlib): a run's front with every evaluated schedule and the baselines, the hypervolume per
generation, and an evaluation's rows by family (ecad's schedules, heuristics, other libraries).

They take plain points, not a run: a running search draws its ``front.png`` with :func:`plot_front` each generation,
and the report draws its own from the finished run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def place_labels(
    ax: Any, points: list[tuple[float, float, str]], step: float = 9.0, avoid: list[tuple[float, float]] = ()
) -> list[Any]:
    """Annotate each ``(x, y, text)`` beside its point (on its left where the right side would leave the axes), each
    with a leader line to its point: a label that would overlap a marker (the points, and those in ``avoid``) or a
    label placed before it moves away in steps of ``step`` points, alternately above and below, so it stays as near
    its own point as the others allow. Baselines often sit close together (FORA-10 and FORA-20 at almost no
    quality)."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    radius = 4 * fig.dpi / 72  # a marker's half width, in pixels
    markers = [ax.transData.transform((x, y)) for x, y in [*(p[:2] for p in points), *avoid]]
    placed, boxes = [], [Bbox.from_bounds(mx - radius, my - radius, 2 * radius, 2 * radius) for mx, my in markers]
    for x, y, text in sorted(points, key=lambda p: (p[1], p[0])):
        tries = [(side, step * ((k + 1) // 2) * (-1) ** k) for k in range(80) for side in (1, -1)]
        for side, offset in tries:
            label = ax.annotate(
                text,
                (x, y),
                fontsize=7,
                xytext=(7 * side, offset),
                textcoords="offset points",
                ha="left" if side > 0 else "right",
                va="center",
                arrowprops={"arrowstyle": "-", "color": "0.45", "lw": 0.6, "shrinkA": 0, "shrinkB": 3},
            )
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer).expanded(1.02, 1.05)  # the text, without its leader line
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in boxes):
                break
            label.remove()
        else:  # nowhere free inside the axes: beside the point, as before
            label = ax.annotate(text, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
            box = Text.get_window_extent(label, renderer)
        placed.append(label)
        boxes.append(box)
    return placed


def plot_front(
    path: Path,
    evaluated: Sequence[tuple[float, float]],
    front: Sequence[tuple[float, float]],
    *,
    speedup: str,
    metric: str,
    generation: int,
    baselines: Sequence[tuple[float, float, str]] = (),
) -> list[Any]:
    """Write the front plot: ``(speedup, quality)`` of every evaluated schedule, of the front after ``generation``
    and, named, of the baselines (``speedup`` names its kind); written whole or not at all, so a search can redraw
    it every generation. Returns the baseline labels (placed so that none overlaps another)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.scatter([x for x, _ in evaluated], [y for _, y in evaluated], s=8, c="0.7", label="evaluated")
    ax.plot(
        [x for x, _ in front],
        [y for _, y in front],
        "o-",
        c="tab:red",
        ms=4,
        label=f"front after generation {generation}",
    )
    if baselines:
        ax.scatter(
            [x for x, _, _ in baselines],
            [y for _, y, _ in baselines],
            marker="D",
            s=28,
            c="goldenrod",
            edgecolors="saddlebrown",
            label="baselines",
            zorder=3,
        )
    ax.set_xlabel(f"{speedup} (cost model; no caching = 1)")
    ax.set_ylabel(f"quality ({metric})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    labels = place_labels(ax, list(baselines), avoid=list(front))
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return labels


def plot_hypervolume(path: Path, hypervolumes: Sequence[tuple[int, float]]) -> list[float]:
    """Write the plot of ``(generation, hypervolume)``; returns its generation ticks (whole generations only)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=120)
    ax.plot([g for g, _ in hypervolumes], [hv for _, hv in hypervolumes], ".-", c="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    ticks = [float(t) for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    fig.savefig(path)
    plt.close(fig)
    return ticks


def eval_points(report: dict[str, Any], column: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """An evaluation's rows as plot points: (quality label, rows with family, quality, MAC and measured speedup).

    ``column`` names a metric number (``match_rate``, ``tiny_reward``, ``fid``...); default: the first metric's
    ``quality``.
    """
    first = next(iter(report["results"][0]["metrics"]))
    label = f"{first} ({column})" if column else first
    points = []
    for row in report["results"]:
        scores = next(s for s in row["metrics"].values() if column in s) if column else row["metrics"][first]
        points.append(
            {
                "name": row["name"],
                "family": row.get("family", "ecad"),
                "quality": scores[column or "quality"],
                "macs_speedup": row["macs_speedup"],
                "speedup": row.get("speedup"),
            }
        )
    return label, points


def _family_style(family: str, index: int) -> dict[str, Any]:
    if family == "ecad":
        return {"color": "tab:red", "marker": "o", "ms": 6, "zorder": 4}
    if family == "no-cache":
        return {"color": "black", "marker": "*", "ms": 11, "zorder": 5}
    colors = (
        "tab:blue",
        "tab:orange",
        "tab:green",
        "tab:purple",
        "tab:brown",
        "tab:pink",
        "tab:olive",
        "tab:cyan",
        "tab:gray",
        "goldenrod",
    )
    markers = ("s", "^", "v", "D", "P", "X", "<", ">", "p", "h")
    return {"color": colors[index % len(colors)], "marker": markers[index % len(markers)], "ms": 5, "zorder": 3}


def plot_eval(report: dict[str, Any], path: Path, column: str | None = None, title: str | None = None) -> None:
    """Quality against measured speedup (when latency was measured) and against executed-MAC speedup, one series
    per family: ecad's schedules, ecad's heuristics, each other library's method (its settings in sweep order)."""
    plt = _pyplot()
    label, points = eval_points(report, column)
    axes_x = [("speedup", "measured speedup (whole pipeline call)")] if points[0]["speedup"] else []
    axes_x.append(("macs_speedup", "MAC speedup (executed MACs)"))
    families = list(dict.fromkeys(p["family"] for p in points))
    fig, axes = plt.subplots(1, len(axes_x), figsize=(6.0 * len(axes_x), 4.4), dpi=120, squeeze=False)
    for ax, (key, xlabel) in zip(axes[0], axes_x, strict=True):
        for index, family in enumerate(families):
            series = [p for p in points if p["family"] == family]
            if family == "ecad":
                series.sort(key=lambda p: p[key])
            style = _family_style(family, index)
            ax.plot(
                [p[key] for p in series],
                [p["quality"] for p in series],
                ls="-" if len(series) > 1 else "",
                lw=1,
                label=family,
                **style,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
