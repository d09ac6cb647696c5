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
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from .validation import read_json, schema_problem

FORMAT = "ecad.schedule/1"
FORMAT_V2 = "ecad.schedule/2"  # adds the forecast action 'f' and forecast_order
FORMATS = (FORMAT, FORMAT_V2)
PAPER_KEY = "paper"
# Most steps x blocks x components one schedule may hold (a 20-step FLUX.1 schedule has 6,840).
MAX_BITS = 1 << 26
# The characters of the three actions, indexed by their code (0 reuse, 1 recompute, 2 forecast).
ACTION_CHARS = ("0", "1", "f")
RECOMPUTE, FORECAST = 1, 2
FORECAST_ORDERS = (1, 2)
T = TypeVar("T")


class ScheduleError(ValueError):
    """A schedule is malformed or does not fit the model or call it is used with."""


class ScheduleFields(Protocol):
    """What the writers read of a schedule (:class:`ecad.schedule.CacheSchedule` has these fields)."""

    recompute: torch.Tensor
    forecast: torch.Tensor
    exists: torch.Tensor
    block_names: tuple[str, ...]
    component_names: tuple[str, ...]
    metadata: dict[str, Any]
    forecast_order: int


@dataclass(frozen=True)
class PaperNaming:
    """How one model family's paper files name its components, where they differ from ecad's (FLUX: ``full_attn``).

    Args:
        family: the family's name, recorded as the loaded schedule's ``metadata["model"]``.
        component_names: ecad's component axis for the family.
        paper_names: every component name the family's paper files use.
        pairs: a block's name -> its ``(ecad name, paper name)`` pairs, in the paper's order; raises
            :class:`ScheduleError` for a name that is not one of the family's blocks.
    """

    family: str
    component_names: tuple[str, ...]
    paper_names: frozenset[str]
    pairs: Callable[[str], tuple[tuple[str, str], ...]]


def actions_of(recompute: torch.Tensor, forecast: torch.Tensor) -> torch.Tensor:
    """uint8 action codes from the two masks: ``0`` reuse, ``1`` recompute, ``2`` forecast."""
    return recompute.to(torch.uint8) + FORECAST * forecast.to(torch.uint8)

# Schemas: the shape of both formats. What they cannot say (bit strings as long as num_steps, the same components
# in every step of a paper file) is checked by the parsers below.
_METADATA_SCHEMA = {
    "type": "object",
    "description": "free-form facts about the schedule, as a JSON object",
    "properties": {
        "name": {"type": ["string", "null"]},
        "macs": {"type": "object", "required": ["total_macs"],
                 "properties": {"total_macs": {"type": "number", "minimum": 0}, "convention": {"type": "string"}}},
        "paper": {"type": "object", "properties": {"cache_schedule": {"type": "object"}}},
        "resampled_from_steps": {"type": "integer", "minimum": 1},
    },
}
ECAD_SCHEMA = {
    "type": "object",
    "required": ["format", "num_steps", "components", "blocks"],
    "properties": {
        "num_steps": {"type": "integer", "minimum": 1, "description": "the number of denoising steps"},
        "components": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "minLength": 1},
                       "description": "a list of distinct component names"},
        "blocks": {
            "type": "object", "minProperties": 1,
            "description": 'an object of blocks, each {"component": "0101...", ...}',
            "additionalProperties": {
                "type": "object", "description": 'a block is {"component": "0101...", ...}',
                "additionalProperties": {"type": "string", "description": "an action string: '1' recompute, "
                                                                          "'0' reuse (format /2: 'f' forecast), "
                                                                          "one character per step"},
            },
        },
        "forecast_order": {"type": "integer", "enum": list(FORECAST_ORDERS),
                           "description": "the forecast's polynomial order, 1 or 2"},
        "metadata": _METADATA_SCHEMA,
    },
}
PAPER_SCHEMA = {
    "type": "object",
    "required": ["cache_schedule"],
    "properties": {
        "cache_schedule": {
            "type": "object", "required": ["schedule"],
            "properties": {
                "schedule": {
                    "type": "object", "minProperties": 1,
                    "description": 'an object of steps "000", "001", ..., each {block: {component: true/false}}',
                    "additionalProperties": {
                        "type": "object", "minProperties": 1,
                        "description": "a step is {block: {component: true/false}}",
                        "additionalProperties": {
                            "type": "object", "description": "a block is {component: true/false}",
                            "additionalProperties": {"type": "boolean",
                                                     "description": "true recomputes, false reuses"},
                        },
                    },
                },
                "name": {"type": ["string", "null"]},
                "num_inference_steps": {"type": "integer"},
                "num_blocks": {"type": "integer"},
                "num_single_blocks": {"type": "integer"},
            },
        },
        "config": {"type": "object"},
        "metrics": {"type": "object", "properties": {"total_macs": {"type": "number", "minimum": 0}}},
    },
}


def write_json(data: dict[str, Any], path: str | os.PathLike, text: str | None = None) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text if text is not None else json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


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


def _check_size(source: str, steps: int, blocks: int, components: int) -> None:
    """Refuse before allocating: the file's content bounds the steps, this bounds blocks x components."""
    if steps * blocks * components > MAX_BITS:
        raise ScheduleError(f"{source}: {steps} steps x {blocks} blocks x {components} components is more than the "
                            f"{MAX_BITS:,} bits ecad holds in one schedule; is it a schedule file?")


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
        raise ScheduleError(f"{source}: 'forecast_order' belongs to format {FORMAT_V2!r}; set that format or "
                            "remove the field.")
    strings = [(b, block, comp, row) for b, (block, comps) in enumerate(blocks.items()) for comp, row in comps.items()]
    if not strings:
        raise ScheduleError(f"{source}: no block lists a component; a schedule needs at least one bit string.")
    for _, block, comp, row in strings:
        if comp not in components:
            raise ScheduleError(f"{source}: block {block!r} names component {comp!r}, which is not in 'components' "
                                f"{components}; add it there or remove it from the block.")
        if len(row) != num_steps or not set(row) <= characters:
            allowed = "/".join(f"'{c}'" for c in sorted(characters))
            hint = " ('f' forecast needs format 'ecad.schedule/2')" if "f" in row and "f" not in characters else ""
            raise ScheduleError(f"{source}: block {block!r}, component {comp!r}: expected {num_steps} characters "
                                f"{allowed} (num_steps, one per step), got {_preview(row)}{hint}.")
    _check_size(source, num_steps, len(blocks), len(components))
    actions = torch.zeros(num_steps, len(blocks), len(components), dtype=torch.uint8)
    exists = torch.zeros(len(blocks), len(components), dtype=torch.bool)
    for b, _, comp, row in strings:
        c = components.index(comp)
        exists[b, c] = True
        actions[:, b, c] = _actions_of(row)
    return {"recompute": actions == 1, "block_names": tuple(blocks), "component_names": tuple(components),
            "exists": exists, "metadata": dict(data.get("metadata") or {}), "forecast": actions == FORECAST,
            "forecast_order": int(data.get("forecast_order", 1))}


def _preview(row: str) -> str:
    return repr(row) if len(row) <= 40 else f"{len(row)} characters starting {row[:20]!r}"


def save_schedule(schedule: ScheduleFields, path: str | os.PathLike) -> None:
    write_json({}, path, text=_dumps_compact(schedule_to_dict(schedule)))


# ---------------------------------------------------------------------- the paper's format
def schedule_from_paper_dict(data: Any, source: str = "the schedule",
                             namings: Sequence[PaperNaming] = ()) -> dict[str, Any]:
    """Parse the paper's format into a schedule's fields: every step lists the same blocks and, per block, the same
    components, as booleans. Components named as one of ``namings`` names them get that family's names."""
    problem = schema_problem(data, PAPER_SCHEMA)
    if problem:
        raise ScheduleError(f"{source} is not a valid ECAD paper schedule: {problem}.")
    cache_schedule = data["cache_schedule"]
    steps = cache_schedule["schedule"]
    if not all(re.fullmatch("[0-9]+", key) for key in steps):
        raise ScheduleError(f"{source}: paper schedule steps must be keyed 000..N-1, got {_preview(str(list(steps)))}.")
    step_keys = sorted(steps, key=int)
    if [int(k) for k in step_keys] != list(range(len(step_keys))):
        raise ScheduleError(f"{source}: paper schedule steps must be 0..N-1, each once, got "
                            f"{_preview(str(step_keys))}.")
    first = steps[step_keys[0]]
    block_names = list(first)
    components: list[str] = []
    for comps in first.values():
        components += [c for c in comps if c not in components]
    if not components:
        raise ScheduleError(f"{source}: step {step_keys[0]} lists no component in any block.")
    _check_head(source, cache_schedule, len(step_keys), len(block_names))
    _check_size(source, len(step_keys), len(block_names), len(components))
    recompute = torch.zeros(len(step_keys), len(block_names), len(components), dtype=torch.bool)
    exists = torch.zeros(len(block_names), len(components), dtype=torch.bool)
    for b, block in enumerate(block_names):
        for comp in first[block]:
            exists[b, components.index(comp)] = True
    for s, key in enumerate(step_keys):
        if list(steps[key]) != block_names:
            raise ScheduleError(f"{source}: paper schedule step {key} has blocks {_preview(str(list(steps[key])))}, "
                                f"expected those of step {step_keys[0]}: {_preview(str(block_names))}.")
        for b, block in enumerate(block_names):
            entry = steps[key][block]
            if set(entry) != set(first[block]):
                missing, extra = sorted(set(first[block]) - set(entry)), sorted(set(entry) - set(first[block]))
                raise ScheduleError(
                    f"{source}: paper schedule step {key}, block {block}: "
                    + (f"missing {missing}" if missing else f"unexpected {extra}")
                    + f"; every step lists the components of step {step_keys[0]}, true (recompute) or false (reuse)."
                )
            for comp, value in entry.items():
                recompute[s, b, components.index(comp)] = value
    paper = {k: v for k, v in data.items() if k != "cache_schedule"}
    paper["cache_schedule"] = {k: v for k, v in cache_schedule.items() if k != "schedule"}
    metadata: dict[str, Any] = {"source_format": "ecad-paper", "name": cache_schedule.get("name"), PAPER_KEY: paper}
    if "total_macs" in data.get("metrics", {}):
        metadata["macs"] = {"total_macs": data["metrics"]["total_macs"], "convention": "paper"}
    fields = {"recompute": recompute, "block_names": tuple(block_names), "component_names": tuple(components),
              "exists": exists, "metadata": metadata}
    naming = next((n for n in namings if n.paper_names and set(components) <= n.paper_names), None)
    return fields if naming is None else _from_paper_names(fields, naming)


def _check_head(source: str, head: dict[str, Any], steps: int, blocks: int) -> None:
    """The paper's header fields, where present, must describe the schedule they head."""
    if head.get("num_inference_steps", steps) != steps:
        raise ScheduleError(f"{source}: cache_schedule.num_inference_steps is {head['num_inference_steps']} but the "
                            f"schedule lists {steps} steps; fix one of them.")
    if "num_blocks" in head and head["num_blocks"] + head.get("num_single_blocks", 0) != blocks:
        raise ScheduleError(f"{source}: cache_schedule.num_blocks (+ num_single_blocks) says "
                            f"{head['num_blocks'] + head.get('num_single_blocks', 0)} blocks but each step lists "
                            f"{blocks}; fix one of them.")


def _from_paper_names(fields: dict[str, Any], naming: PaperNaming) -> dict[str, Any]:
    """Rename the paper's components to the family's, on the family's component axis."""
    names, blocks, paper = naming.component_names, fields["block_names"], fields["component_names"]
    steps = fields["recompute"].shape[0]
    recompute = torch.zeros(steps, len(blocks), len(names), dtype=torch.bool)
    exists = torch.zeros(len(blocks), len(names), dtype=torch.bool)
    for b, block in enumerate(blocks):
        ours = {paper_name: name for name, paper_name in naming.pairs(block)}
        for c, paper_name in enumerate(paper):
            if fields["exists"][b, c]:
                if paper_name not in ours:
                    raise ScheduleError(f"{naming.family} block {block!r} has no paper component {paper_name!r}.")
                exists[b, names.index(ours[paper_name])] = True
                recompute[:, b, names.index(ours[paper_name])] = fields["recompute"][:, b, c]
    metadata = {**fields["metadata"], "model": naming.family}
    return {**fields, "recompute": recompute, "component_names": names, "exists": exists, "metadata": metadata}


def _paper_names(schedule: ScheduleFields, namings: Sequence[PaperNaming]) -> list[list[tuple[int, str]]]:
    """For every block, ``(component index, paper name)`` of its existing components, in the paper's order."""
    names = schedule.component_names
    naming = next((n for n in namings if n.paper_names and n.component_names == names), None)
    out = []
    for b, block in enumerate(schedule.block_names):
        existing = [c for c in range(len(names)) if schedule.exists[b, c]]
        if naming is None:
            out.append([(c, names[c]) for c in existing])
            continue
        out.append([(names.index(name), paper) for name, paper in naming.pairs(block) if names.index(name) in existing])
    return out


def schedule_to_paper_dict(schedule: ScheduleFields, namings: Sequence[PaperNaming] = ()) -> dict[str, Any]:
    """The schedule in the paper's format, its components named as the ``namings`` of its family name them."""
    if bool(schedule.forecast.any()):
        raise ScheduleError("the ECAD paper's format holds only recompute/reuse; this schedule forecasts, so save it "
                            "in ecad's own format (`schedule.save(path)`, ecad.schedule/2).")
    paper = schedule.metadata.get(PAPER_KEY) or {}
    head = dict(paper.get("cache_schedule") or {})
    bits = schedule.recompute
    head.setdefault("num_blocks", len(schedule.block_names))
    head.setdefault("num_inference_steps", bits.shape[0])
    head.setdefault("name", schedule.metadata.get("name") or "ecad")
    names = _paper_names(schedule, namings)
    head["schedule"] = {
        f"{s:03d}": {
            block: {paper_name: bool(bits[s, b, c]) for c, paper_name in names[b]}
            for b, block in enumerate(schedule.block_names)
        }
        for s in range(bits.shape[0])
    }
    out = {"cache_schedule": head}
    out.update({k: v for k, v in paper.items() if k != "cache_schedule"})
    out.setdefault("config", {})
    out.setdefault("metrics", {})
    return out


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
        f"{path}: unknown schedule format (no \"format\": \"{FORMAT}\" and no paper 'cache_schedule' key)."
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
