"""The ECAD paper's published schedule format, read as is and written back with the fields it was read with.

A family whose paper files name components differently from its adapter (FLUX: ``full_attn``, ``single_proj_out``...)
maps both directions through a :class:`PaperNaming` the caller passes in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..validation import schema_problem
from .fields import ScheduleError, ScheduleFields, check_size, preview

PAPER_KEY = "paper"


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


PAPER_SCHEMA = {
    "type": "object",
    "required": ["cache_schedule"],
    "properties": {
        "cache_schedule": {
            "type": "object",
            "required": ["schedule"],
            "properties": {
                "schedule": {
                    "type": "object",
                    "minProperties": 1,
                    "description": 'an object of steps "000", "001", ..., each {block: {component: true/false}}',
                    "additionalProperties": {
                        "type": "object",
                        "minProperties": 1,
                        "description": "a step is {block: {component: true/false}}",
                        "additionalProperties": {
                            "type": "object",
                            "description": "a block is {component: true/false}",
                            "additionalProperties": {"type": "boolean", "description": "true recomputes, false reuses"},
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


def schedule_from_paper_dict(
    data: Any, source: str = "the schedule", namings: Sequence[PaperNaming] = ()
) -> dict[str, Any]:
    """Parse the paper's format into a schedule's fields: every step lists the same blocks and, per block, the same
    components, as booleans. Components named as one of ``namings`` names them get that family's names."""
    problem = schema_problem(data, PAPER_SCHEMA)
    if problem:
        raise ScheduleError(f"{source} is not a valid ECAD paper schedule: {problem}.")
    cache_schedule = data["cache_schedule"]
    steps = cache_schedule["schedule"]
    if not all(re.fullmatch("[0-9]+", key) for key in steps):
        raise ScheduleError(f"{source}: paper schedule steps must be keyed 000..N-1, got {preview(str(list(steps)))}.")
    step_keys = sorted(steps, key=int)
    if [int(k) for k in step_keys] != list(range(len(step_keys))):
        raise ScheduleError(f"{source}: paper schedule steps must be 0..N-1, each once, got {preview(str(step_keys))}.")
    first = steps[step_keys[0]]
    block_names = list(first)
    components: list[str] = []
    for comps in first.values():
        components += [c for c in comps if c not in components]
    if not components:
        raise ScheduleError(f"{source}: step {step_keys[0]} lists no component in any block.")
    _check_head(source, cache_schedule, len(step_keys), len(block_names))
    check_size(source, len(step_keys), len(block_names), len(components))
    recompute = torch.zeros(len(step_keys), len(block_names), len(components), dtype=torch.bool)
    exists = torch.zeros(len(block_names), len(components), dtype=torch.bool)
    for b, block in enumerate(block_names):
        for comp in first[block]:
            exists[b, components.index(comp)] = True
    for s, key in enumerate(step_keys):
        if list(steps[key]) != block_names:
            raise ScheduleError(
                f"{source}: paper schedule step {key} has blocks {preview(str(list(steps[key])))}, "
                f"expected those of step {step_keys[0]}: {preview(str(block_names))}."
            )
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
    fields = {
        "recompute": recompute,
        "block_names": tuple(block_names),
        "component_names": tuple(components),
        "exists": exists,
        "metadata": metadata,
    }
    naming = next((n for n in namings if n.paper_names and set(components) <= n.paper_names), None)
    return fields if naming is None else _from_paper_names(fields, naming)


def _check_head(source: str, head: dict[str, Any], steps: int, blocks: int) -> None:
    """The paper's header fields, where present, must describe the schedule they head."""
    if head.get("num_inference_steps", steps) != steps:
        raise ScheduleError(
            f"{source}: cache_schedule.num_inference_steps is {head['num_inference_steps']} but the "
            f"schedule lists {steps} steps; fix one of them."
        )
    if "num_blocks" in head and head["num_blocks"] + head.get("num_single_blocks", 0) != blocks:
        raise ScheduleError(
            f"{source}: cache_schedule.num_blocks (+ num_single_blocks) says "
            f"{head['num_blocks'] + head.get('num_single_blocks', 0)} blocks but each step lists "
            f"{blocks}; fix one of them."
        )


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
        raise ScheduleError(
            "the ECAD paper's format holds only recompute/reuse; this schedule forecasts, so save it "
            "in ecad's own format (`schedule.save(path)`, ecad.schedule/2)."
        )
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
