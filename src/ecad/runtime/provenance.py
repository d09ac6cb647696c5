"""What a schedule file says about itself: the settings its numbers were measured under, and checks of a call
against them.

Every schedule ecad writes (a search's ``front/NNN.json``, an evaluation's ``schedules/<name>.json``) carries in its
metadata:

- ``settings``: the generation settings it was found or evaluated with: model, steps, guidance, height, width;
- ``score``: who scored it (``ecad search`` on N calibration rows, ``ecad eval`` on N rows), the quality metric and
  value, and the metric's other numbers;
- ``macs``: its MACs, the no-caching MACs, the MAC speedup and the counting convention.

A schedule is only as good as measured under those settings, so ``ecad generate``, ``ecad eval`` and
:func:`ecad.enable_cache` compare a call's settings with ``settings`` and log a warning for every difference (once
per process and difference).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..adapters import model_source
from ..schedule import CacheSchedule
from ..units import format_macs

logger = logging.getLogger(__name__)

SETTINGS = "settings"
SCORE = "score"
MACS = "macs"
MEASURED = "measured"
_LABELS = {"model": "model", "num_steps": "steps", "guidance_scale": "guidance", "height": "height", "width": "width"}
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class GenerationSettings:
    """The settings a schedule's images depend on besides its bits; ``None`` = unknown or not checked."""

    model: str | None = None
    num_steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def of(cls, schedule: CacheSchedule) -> GenerationSettings | None:
        """The settings recorded in a schedule's metadata, or ``None`` for a file that records none."""
        data = schedule.metadata.get(SETTINGS)
        if not isinstance(data, dict):
            return None
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def describe(self) -> str:
        """``tiny-shapes, 20 steps, guidance 3, 64x64 px``."""
        parts = [self.model] if self.model else []
        if self.num_steps is not None:
            parts.append(f"{self.num_steps} steps")
        if self.guidance_scale is not None:
            parts.append(f"guidance {self.guidance_scale:g}")
        if self.height is not None and self.width is not None:
            parts.append(f"{self.height}x{self.width} px")
        return ", ".join(parts) or "unknown settings"

    def differences(self, call: GenerationSettings) -> list[str]:
        """``"guidance 4.5 (found with 3)"`` for every setting both sides know and that differs."""
        out = []
        for name, label in _LABELS.items():
            mine, theirs = getattr(self, name), getattr(call, name)
            if mine is None or theirs is None:
                continue
            same = _same_model(mine, theirs) if name == "model" else float(mine) == float(theirs)
            if not same:
                out.append(f"{label} {_show(theirs)} (found with {_show(mine)})")
        return out


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _same_model(a: str, b: str) -> bool:
    """Names, preset names, hub ids and folders that load the same pipeline are the same model."""
    a, b = model_source(str(a)), model_source(str(b))
    if Path(a).exists() and Path(b).exists():
        return Path(a).resolve() == Path(b).resolve()
    return a.rstrip("/") == b.rstrip("/")


def annotate(schedule: CacheSchedule, **metadata: Any) -> CacheSchedule:
    """The same schedule with ``metadata`` entries set (a :class:`GenerationSettings` is stored as its dict)."""
    values = {k: v.to_dict() if isinstance(v, GenerationSettings) else v for k, v in metadata.items()}
    return schedule.with_metadata({**schedule.metadata, **values})


def mac_record(macs: float, full_macs: float, convention: str) -> dict[str, Any]:
    """The ``macs`` entry: this schedule's MACs, no caching's, the MAC speedup (a ratio of counts, not of time)."""
    return {
        "total_macs": int(macs),
        "full_macs": int(full_macs),
        "mac_speedup": full_macs / macs,
        "convention": convention,
    }


def score_record(
    by: str,
    rows: int,
    metric: str | None = None,
    quality: float | None = None,
    numbers: dict[str, float] | None = None,
    prompts: str | None = None,
) -> dict[str, Any]:
    """The ``score`` entry: who measured the quality, on how many (prompt, seed) rows, and what it was."""
    record: dict[str, Any] = {"by": by, "rows": rows}
    if prompts:
        record["prompts"] = prompts
    if metric is not None:
        record |= {"metric": metric, "quality": quality}
    if numbers:
        record["numbers"] = numbers
    return record


def describe_metadata(schedule: CacheSchedule) -> list[str]:
    """Lines for ``ecad show``: the settings, the score and the MACs a schedule file records."""
    lines = []
    settings = GenerationSettings.of(schedule)
    if settings is not None:
        lines.append(f"found under: {settings.describe()}")
    score = schedule.metadata.get(SCORE)
    if isinstance(score, dict):
        what = f"{score['metric']} {score['quality']:.4f}, " if score.get("metric") else ""
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in (score.get("numbers") or {}).items())
        where = f" {score['prompts']}" if score.get("prompts") else ""
        lines.append(
            f"scored by {score.get('by', '?')}: {what}on {score.get('rows', '?')}{where} rows"
            + (f" ({numbers})" if numbers else "")
        )
    macs = schedule.metadata.get(MACS)
    if isinstance(macs, dict) and "total_macs" in macs:
        speedup = f", {macs['mac_speedup']:.2f}x MAC speedup" if "mac_speedup" in macs else ""
        lines.append(f"MACs ({macs.get('convention', '?')} convention): {format_macs(macs['total_macs'])}{speedup}")
    measured = schedule.metadata.get(MEASURED)
    if isinstance(measured, dict) and "speedup" in measured:
        lines.append(
            f"measured speedup {measured['speedup']:.2f}x ({measured.get('median_s', 0):.4g} s per call on "
            f"{measured.get('device', '?')})"
        )
    return lines


def warn_differences(schedule: CacheSchedule, call: GenerationSettings, where: str) -> list[str]:
    """Log (once per process and difference) how ``call`` differs from the settings the schedule records."""
    found = GenerationSettings.of(schedule)
    if found is None:
        return []
    differences = found.differences(call)
    new = [d for d in differences if (found.describe(), d) not in _warned]
    if new:
        _warned.update((found.describe(), d) for d in new)
        logger.warning(
            "%s: this schedule was found under %s, but this call uses %s; its measured quality and "
            "speedup may not hold (use its settings, or measure again with `ecad eval`).",
            where,
            found.describe(),
            "; ".join(new),
        )
    return differences


class CallCheck:
    """What :func:`ecad.enable_cache` can see of a pipeline call, checked against the running schedule.

    The model is known when the cache is enabled; steps, guidance (for pipelines that keep it, such as FLUX, SD3
    and Sana; PixArt's does not) and resolution (for image-shaped latents) at the first transformer call of each
    generation.
    """

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def on_enable(self, schedule: CacheSchedule) -> None:
        model = getattr(self.pipe, "name_or_path", None)
        if model:
            warn_differences(schedule, GenerationSettings(model=str(model)), "ecad.enable_cache")

    def on_generation(self, schedule: CacheSchedule, sample: Any) -> None:
        if GenerationSettings.of(schedule) is None:
            return
        scheduler = getattr(self.pipe, "scheduler", None)
        guidance = getattr(self.pipe, "_guidance_scale", None)
        height = width = None
        scale = getattr(self.pipe, "vae_scale_factor", None)
        if scale and getattr(sample, "ndim", 0) == 4:  # [batch, channels, h, w] latents
            height, width = int(sample.shape[2] * scale), int(sample.shape[3] * scale)
        call = GenerationSettings(
            num_steps=getattr(scheduler, "num_inference_steps", None),
            guidance_scale=float(guidance) if isinstance(guidance, (int, float)) else None,
            height=height,
            width=width,
        )
        warn_differences(schedule, call, "ecad.enable_cache")
