"""Schedule files: ecad's own JSON format, the ECAD paper's published format, and a text picture.

ecad's format keeps one line per block with one string per component, one character per step
(``1`` recompute, ``0`` reuse); a component missing from a block's object does not exist in that block. A FLUX
schedule (20 steps x 57 blocks) is about 6 KB and diffs line by line::

    {"format": "ecad.schedule/1", "num_steps": 20, "components": ["attn1", "attn2", "ff"],
     "blocks": {
      "0": {"attn1": "11010...", "attn2": "10000...", "ff": "11111..."},
      ...},
     "metadata": {"model": "pixart-alpha", ...}}

The paper's format (``{"cache_schedule": {"schedule": {"000": {"0": {"attn1": true, ...}}}}, "config", "metrics"}``)
is read as is; its other fields are kept in ``metadata["paper"]`` so an export writes them back unchanged. Where a
family's paper files name components differently from its adapter (FLUX: ``full_attn``, ``single_proj_out``...), the
adapter declares the paper names and both directions map through them, so a paper FLUX file loads with the live
FLUX model's layout.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .adapters import ADAPTERS, ModelAdapter, adapter_for_paper_components
from .schedule import CacheSchedule, ScheduleError
from .validation import read_json, schema_problem

FORMAT = "ecad.schedule/1"
PAPER_KEY = "paper"
# Most steps x blocks x components one schedule may hold (a 20-step FLUX.1 schedule has 6,840).
MAX_BITS = 1 << 26

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
                "additionalProperties": {"type": "string", "description": "a bit string: '1' recompute, '0' reuse, "
                                                                          "one character per step"},
            },
        },
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
def schedule_to_dict(schedule: CacheSchedule) -> dict[str, Any]:
    bits = schedule.recompute.numpy()
    blocks = {}
    for b, block in enumerate(schedule.block_names):
        blocks[block] = {
            comp: "".join("1" if v else "0" for v in bits[:, b, c])
            for c, comp in enumerate(schedule.component_names)
            if schedule.exists[b, c]
        }
    return {
        "format": FORMAT,
        "num_steps": schedule.num_steps,
        "components": list(schedule.component_names),
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


def _bits_of(row: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(row.encode("ascii"), dtype=np.uint8) == ord("1"))


def _check_size(source: str, steps: int, blocks: int, components: int) -> None:
    """Refuse before allocating: the file's content bounds the steps, this bounds blocks x components."""
    if steps * blocks * components > MAX_BITS:
        raise ScheduleError(f"{source}: {steps} steps x {blocks} blocks x {components} components is more than the "
                            f"{MAX_BITS:,} bits ecad holds in one schedule; is it a schedule file?")


def schedule_from_dict(data: Any, source: str = "the schedule") -> CacheSchedule:
    """Parse ecad's own format; every problem is a :class:`ScheduleError` naming ``source`` and the field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ScheduleError(f"{source} is not an ecad schedule: format is {found!r}, expected {FORMAT!r}.")
    problem = schema_problem(data, ECAD_SCHEMA)
    if problem:
        raise ScheduleError(f"{source}: {problem}.")
    num_steps, components, blocks = int(data["num_steps"]), data["components"], data["blocks"]
    strings = [(b, block, comp, row) for b, (block, comps) in enumerate(blocks.items()) for comp, row in comps.items()]
    if not strings:
        raise ScheduleError(f"{source}: no block lists a component; a schedule needs at least one bit string.")
    for _, block, comp, row in strings:
        if comp not in components:
            raise ScheduleError(f"{source}: block {block!r} names component {comp!r}, which is not in 'components' "
                                f"{components}; add it there or remove it from the block.")
        if len(row) != num_steps or not set(row) <= {"0", "1"}:
            raise ScheduleError(f"{source}: block {block!r}, component {comp!r}: expected {num_steps} characters "
                                f"'0'/'1' (num_steps, one per step), got {_preview(row)}.")
    _check_size(source, num_steps, len(blocks), len(components))
    recompute = torch.zeros(num_steps, len(blocks), len(components), dtype=torch.bool)
    exists = torch.zeros(len(blocks), len(components), dtype=torch.bool)
    for b, _, comp, row in strings:
        c = components.index(comp)
        exists[b, c] = True
        recompute[:, b, c] = _bits_of(row)
    return CacheSchedule(recompute, tuple(blocks), tuple(components), exists, dict(data.get("metadata") or {}))


def _preview(row: str) -> str:
    return repr(row) if len(row) <= 40 else f"{len(row)} characters starting {row[:20]!r}"


def save_schedule(schedule: CacheSchedule, path: str | os.PathLike) -> None:
    write_json({}, path, text=_dumps_compact(schedule_to_dict(schedule)))


# ---------------------------------------------------------------------- the paper's format
def schedule_from_paper_dict(data: Any, source: str = "the schedule") -> CacheSchedule:
    """Parse the paper's format: every step lists the same blocks and, per block, the same components, as booleans."""
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
    schedule = CacheSchedule(recompute, tuple(block_names), tuple(components), exists, metadata)
    adapter = adapter_for_paper_components(components)
    return schedule if adapter is None else _from_paper_names(schedule, adapter)


def _check_head(source: str, head: dict[str, Any], steps: int, blocks: int) -> None:
    """The paper's header fields, where present, must describe the schedule they head."""
    if head.get("num_inference_steps", steps) != steps:
        raise ScheduleError(f"{source}: cache_schedule.num_inference_steps is {head['num_inference_steps']} but the "
                            f"schedule lists {steps} steps; fix one of them.")
    if "num_blocks" in head and head["num_blocks"] + head.get("num_single_blocks", 0) != blocks:
        raise ScheduleError(f"{source}: cache_schedule.num_blocks (+ num_single_blocks) says "
                            f"{head['num_blocks'] + head.get('num_single_blocks', 0)} blocks but each step lists "
                            f"{blocks}; fix one of them.")


def _from_paper_names(schedule: CacheSchedule, adapter: ModelAdapter) -> CacheSchedule:
    """Rename the paper's components to the adapter's, on the adapter's component axis."""
    names = adapter.component_names
    recompute = torch.zeros(schedule.num_steps, schedule.num_blocks, len(names), dtype=torch.bool)
    exists = torch.zeros(schedule.num_blocks, len(names), dtype=torch.bool)
    for b, block in enumerate(schedule.block_names):
        for c, paper_name in enumerate(schedule.component_names):
            if schedule.exists[b, c]:
                ours = names.index(adapter.from_paper_name(block, paper_name))
                exists[b, ours] = True
                recompute[:, b, ours] = schedule.recompute[:, b, c]
    metadata = {**schedule.metadata, "model": adapter.family}
    return CacheSchedule(recompute, schedule.block_names, names, exists, metadata)


def _paper_names(schedule: CacheSchedule) -> list[list[tuple[int, str]]]:
    """For every block, ``(component index, paper name)`` of its existing components, in the paper's order."""
    adapter = next((a for a in ADAPTERS if a.paper_component_names and a.component_names == schedule.component_names),
                   None)
    out = []
    for b, block in enumerate(schedule.block_names):
        existing = [c for c in range(schedule.num_components) if schedule.exists[b, c]]
        if adapter is None:
            out.append([(c, schedule.component_names[c]) for c in existing])
            continue
        group = adapter.group_of(block)
        order = [schedule.component_names.index(name) for name in group.components]
        out.append([(c, group.paper_name(schedule.component_names[c])) for c in order if c in existing])
    return out


def schedule_to_paper_dict(schedule: CacheSchedule) -> dict[str, Any]:
    paper = schedule.metadata.get(PAPER_KEY) or {}
    head = dict(paper.get("cache_schedule") or {})
    head.setdefault("num_blocks", schedule.num_blocks)
    head.setdefault("num_inference_steps", schedule.num_steps)
    head.setdefault("name", schedule.metadata.get("name") or "ecad")
    bits = schedule.recompute
    names = _paper_names(schedule)
    head["schedule"] = {
        f"{s:03d}": {
            block: {paper_name: bool(bits[s, b, c]) for c, paper_name in names[b]}
            for b, block in enumerate(schedule.block_names)
        }
        for s in range(schedule.num_steps)
    }
    out = {"cache_schedule": head}
    out.update({k: v for k, v in paper.items() if k != "cache_schedule"})
    out.setdefault("config", {})
    out.setdefault("metrics", {})
    return out


# ---------------------------------------------------------------------- loading
def load_schedule(path: str | os.PathLike) -> CacheSchedule:
    path = Path(path)
    if not path.is_file():
        raise ScheduleError(f"schedule file not found: {path}")
    data = read_json(path, error=ScheduleError, fix="is it a schedule file?")
    if not isinstance(data, dict):
        raise ScheduleError(f"{path}: a schedule file holds a JSON object, found {type(data).__name__}.")
    version = data.get("format")
    if isinstance(version, str) and version.startswith("ecad.schedule/") and version != FORMAT:
        raise ScheduleError(f"{path} has format {version!r}; this ecad reads {FORMAT!r} (upgrade ecad?).")
    parse = schedule_from_dict if version == FORMAT else schedule_from_paper_dict if "cache_schedule" in data else None
    if parse is not None:
        try:
            return parse(data, str(path))
        except ScheduleError as err:  # from the schedule's own checks or an adapter's names: say which file
            if str(path) in str(err):
                raise
            raise ScheduleError(f"{path}: {err}") from None
    raise ScheduleError(
        f"{path}: unknown schedule format (no \"format\": \"{FORMAT}\" and no paper 'cache_schedule' key)."
    )


# ---------------------------------------------------------------------- picture
def render_schedule(schedule: CacheSchedule, on: str = "█", off: str = "·") -> str:
    width = max(len(f"{c} {b}") for c in schedule.component_names for b in schedule.block_names)
    ruler = "".join(str(s % 10) for s in range(schedule.num_steps))
    lines = [f"{'step':>{width}} {ruler}"]
    bits = schedule.recompute
    for c, comp in enumerate(schedule.component_names):
        for b, block in enumerate(schedule.block_names):
            if not schedule.exists[b, c]:
                continue
            row = "".join(on if bits[s, b, c] else off for s in range(schedule.num_steps))
            lines.append(f"{comp + ' ' + block:>{width}} {row}")
    return "\n".join(lines)
