"""Schedule files: ecad's own JSON format, the ECAD paper's published format, and a text picture.

ecad's format keeps one line per block with one string per component, one character per step
(``1`` recompute, ``0`` reuse); a component missing from a block's object does not exist in that block. A FLUX
schedule (20 steps x 57 blocks) is about 6 KB and diffs line by line::

    {"format": "ecad.schedule/1", "num_steps": 20, "components": ["attn1", "attn2", "ff"],
     "blocks": {
      "0": {"attn1": "11010...", "attn2": "10000...", "ff": "11111..."},
      ...},
     "metadata": {"model": "pixart-alpha", ...}}

A schedule that forecasts is written as ``"format": "ecad.schedule/2"``: the same layout with a third character,
``f`` (forecast), and ``"forecast_order": 1`` or ``2``. A schedule without ``f`` is always written as
``ecad.schedule/1``, so files of the paper's two actions stay readable by every ecad version.

The paper's format (``{"cache_schedule": {"schedule": {"000": {"0": {"attn1": true, ...}}}}, "config", "metrics"}``)
is read as is; its other fields are kept in ``metadata["paper"]`` so an export writes them back unchanged. Where a
family's paper files name components differently from its adapter (FLUX: ``full_attn``, ``single_proj_out``...), both
directions map through a :class:`PaperNaming` the caller passes in (:class:`ecad.schedule.CacheSchedule` passes those
the adapters registered), so a paper FLUX file loads with the live FLUX model's layout.

This module knows no model and no schedule class: readers return a schedule's fields (the keyword arguments of
:class:`ecad.schedule.CacheSchedule`), writers read them from any object that has them (:class:`ScheduleFields`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ..validation import read_json, schema_problem, write_json
from .fields import (
    ACTION_CHARS,
    FORECAST,
    FORECAST_ORDERS,
    FORMAT,
    FORMAT_V2,
    FORMATS,
    ScheduleError,
    ScheduleFields,
    actions_of,
    check_size,
    preview,
)
from .paper import PaperNaming, schedule_from_paper_dict

T = TypeVar("T")

# The schema: the shape of ecad's format. What it cannot say (bit strings as long as num_steps) is checked by the
# parser below; the paper's format has its own (ecad.schedule.paper).
_METADATA_SCHEMA = {
    "type": "object",
    "description": "free-form facts about the schedule, as a JSON object",
    "properties": {
        "name": {"type": ["string", "null"]},
        "macs": {
            "type": "object",
            "required": ["total_macs"],
            "properties": {"total_macs": {"type": "number", "minimum": 0}, "convention": {"type": "string"}},
        },
        "paper": {"type": "object", "properties": {"cache_schedule": {"type": "object"}}},
        "resampled_from_steps": {"type": "integer", "minimum": 1},
    },
}
ECAD_SCHEMA = {
    "type": "object",
    "required": ["format", "num_steps", "components", "blocks"],
    "properties": {
        "num_steps": {"type": "integer", "minimum": 1, "description": "the number of denoising steps"},
        "components": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
            "description": "a list of distinct component names",
        },
        "blocks": {
            "type": "object",
            "minProperties": 1,
            "description": 'an object of blocks, each {"component": "0101...", ...}',
            "additionalProperties": {
                "type": "object",
                "description": 'a block is {"component": "0101...", ...}',
                "additionalProperties": {
                    "type": "string",
                    "description": "an action string: '1' recompute, "
                    "'0' reuse (format /2: 'f' forecast), "
                    "one character per step",
                },
            },
        },
        "forecast_order": {
            "type": "integer",
            "enum": list(FORECAST_ORDERS),
            "description": "the forecast's polynomial order, 1 or 2",
        },
        "metadata": _METADATA_SCHEMA,
    },
}


# ---------------------------------------------------------------------- ecad's own format
def schedule_to_dict(schedule: ScheduleFields) -> dict[str, Any]:
    actions = actions_of(schedule.recompute, schedule.forecast).numpy()
    forecasts = bool(schedule.forecast.any())
    blocks = {}
    for b, block in enumerate(schedule.block_names):
        blocks[block] = {
            comp: "".join(ACTION_CHARS[v] for v in actions[:, b, c])
            for c, comp in enumerate(schedule.component_names)
            if schedule.exists[b, c]
        }
    forecast = {"forecast_order": schedule.forecast_order} if forecasts else {}
    return {
        "format": FORMAT_V2 if forecasts else FORMAT,
        "num_steps": actions.shape[0],
        "components": list(schedule.component_names),
        **forecast,
        "blocks": blocks,
        "metadata": schedule.metadata,
    }


def _dumps_compact(data: dict[str, Any]) -> str:
    """JSON with one line per block: small and readable in a diff."""
    head = {k: v for k, v in data.items() if k not in ("blocks", "metadata")}
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines.append('  "blocks": {')
    items = list(data["blocks"].items())
    for i, (name, comps) in enumerate(items):
        lines.append(f"    {json.dumps(name)}: {json.dumps(comps)}" + ("," if i < len(items) - 1 else ""))
    lines.append("  },")
    meta = json.dumps(data["metadata"], indent=2).replace("\n", "\n  ")
    lines.append(f'  "metadata": {meta}')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _actions_of(row: str) -> torch.Tensor:
    codes = np.frombuffer(row.encode("ascii"), dtype=np.uint8)
    return torch.from_numpy((codes == ord("1")).astype(np.uint8) + 2 * (codes == ord("f")).astype(np.uint8))


def schedule_from_dict(data: Any, source: str = "the schedule") -> dict[str, Any]:
    """Parse ecad's own format into a schedule's fields; every problem is a :class:`ScheduleError` naming ``source``
    and the field."""
    if not isinstance(data, dict) or data.get("format") not in FORMATS:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ScheduleError(f"{source} is not an ecad schedule: format is {found!r}, expected one of {FORMATS}.")
    problem = schema_problem(data, ECAD_SCHEMA)
    if problem:
        raise ScheduleError(f"{source}: {problem}.")
    num_steps, components, blocks = int(data["num_steps"]), data["components"], data["blocks"]
    characters = {"0", "1", "f"} if data["format"] == FORMAT_V2 else {"0", "1"}
    if "forecast_order" in data and data["format"] != FORMAT_V2:
        raise ScheduleError(
            f"{source}: 'forecast_order' belongs to format {FORMAT_V2!r}; set that format or remove the field."
        )
    strings = [(b, block, comp, row) for b, (block, comps) in enumerate(blocks.items()) for comp, row in comps.items()]
    if not strings:
        raise ScheduleError(f"{source}: no block lists a component; a schedule needs at least one bit string.")
    for _, block, comp, row in strings:
        if comp not in components:
            raise ScheduleError(
                f"{source}: block {block!r} names component {comp!r}, which is not in 'components' "
                f"{components}; add it there or remove it from the block."
            )
        if len(row) != num_steps or not set(row) <= characters:
            allowed = "/".join(f"'{c}'" for c in sorted(characters))
            hint = " ('f' forecast needs format 'ecad.schedule/2')" if "f" in row and "f" not in characters else ""
            raise ScheduleError(
                f"{source}: block {block!r}, component {comp!r}: expected {num_steps} characters "
                f"{allowed} (num_steps, one per step), got {preview(row)}{hint}."
            )
    check_size(source, num_steps, len(blocks), len(components))
    actions = torch.zeros(num_steps, len(blocks), len(components), dtype=torch.uint8)
    exists = torch.zeros(len(blocks), len(components), dtype=torch.bool)
    for b, _, comp, row in strings:
        c = components.index(comp)
        exists[b, c] = True
        actions[:, b, c] = _actions_of(row)
    return {
        "recompute": actions == 1,
        "block_names": tuple(blocks),
        "component_names": tuple(components),
        "exists": exists,
        "metadata": dict(data.get("metadata") or {}),
        "forecast": actions == FORECAST,
        "forecast_order": int(data.get("forecast_order", 1)),
    }


def save_schedule(schedule: ScheduleFields, path: str | os.PathLike) -> None:
    write_json({}, path, text=_dumps_compact(schedule_to_dict(schedule)))


# ---------------------------------------------------------------------- loading
def load_schedule(path: str | os.PathLike, build: Callable[..., T], namings: Sequence[PaperNaming] = ()) -> T:
    """``build(**fields)`` of a schedule file in ecad's own format or the paper's (auto-detected; ``namings`` as
    :func:`schedule_from_paper_dict` takes them); every problem, ``build``'s included, names the file."""
    path = Path(path)
    if not path.is_file():
        raise ScheduleError(f"schedule file not found: {path}")
    data = read_json(path, error=ScheduleError, fix="is it a schedule file?")
    if not isinstance(data, dict):
        raise ScheduleError(f"{path}: a schedule file holds a JSON object, found {type(data).__name__}.")
    version = data.get("format")
    if isinstance(version, str) and version.startswith("ecad.schedule/") and version not in FORMATS:
        raise ScheduleError(f"{path} has format {version!r}; this ecad reads {' and '.join(FORMATS)} (upgrade ecad?).")
    if version in FORMATS or "cache_schedule" in data:
        try:
            if version in FORMATS:
                return build(**schedule_from_dict(data, str(path)))
            return build(**schedule_from_paper_dict(data, str(path), namings))
        except ScheduleError as err:  # from the schedule's own checks or a family's names: say which file
            if str(path) in str(err):
                raise
            raise ScheduleError(f"{path}: {err}") from None
    raise ScheduleError(
        f'{path}: unknown schedule format (no "format": "{FORMAT}" and no paper \'cache_schedule\' key).'
    )


# ---------------------------------------------------------------------- picture
def render_schedule(schedule: ScheduleFields, on: str = "█", off: str = "·", forecast: str = "f") -> str:
    steps = schedule.recompute.shape[0]
    width = max(len(f"{c} {b}") for c in schedule.component_names for b in schedule.block_names)
    ruler = "".join(str(s % 10) for s in range(steps))
    lines = [f"{'step':>{width}} {ruler}"]
    actions = actions_of(schedule.recompute, schedule.forecast).tolist()
    symbols = (off, on, forecast)
    for c, comp in enumerate(schedule.component_names):
        for b, block in enumerate(schedule.block_names):
            if not schedule.exists[b, c]:
                continue
            row = "".join(symbols[actions[s][b][c]] for s in range(steps))
            lines.append(f"{comp + ' ' + block:>{width}} {row}")
    return "\n".join(lines)
