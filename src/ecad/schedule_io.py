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
from pathlib import Path
from typing import Any

import torch

from .adapters import ADAPTERS, ModelAdapter, adapter_for_paper_components
from .schedule import CacheSchedule, ScheduleError

FORMAT = "ecad.schedule/1"
PAPER_KEY = "paper"


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


def schedule_from_dict(data: dict[str, Any]) -> CacheSchedule:
    if data.get("format") != FORMAT:
        raise ScheduleError(f"not an ecad schedule: format is {data.get('format')!r}, expected {FORMAT!r}.")
    try:
        num_steps = int(data["num_steps"])
        components = list(data["components"])
        blocks = data["blocks"]
    except (KeyError, TypeError, ValueError) as err:
        raise ScheduleError(f"ecad schedule is missing or has a bad field: {err}") from None
    recompute = torch.zeros(num_steps, len(blocks), len(components), dtype=torch.bool)
    exists = torch.zeros(len(blocks), len(components), dtype=torch.bool)
    for b, (block, comps) in enumerate(blocks.items()):
        for comp, row in comps.items():
            if comp not in components:
                raise ScheduleError(f"block {block!r} names component {comp!r}, which is not in {components}.")
            if len(row) != num_steps or set(row) - {"0", "1"}:
                raise ScheduleError(
                    f"block {block!r}, component {comp!r}: expected {num_steps} characters of '0'/'1', got {row!r}."
                )
            c = components.index(comp)
            exists[b, c] = True
            recompute[:, b, c] = torch.tensor([ch == "1" for ch in row])
    return CacheSchedule(recompute, tuple(blocks), tuple(components), exists, dict(data.get("metadata") or {}))


def save_schedule(schedule: CacheSchedule, path: str | os.PathLike) -> None:
    write_json({}, path, text=_dumps_compact(schedule_to_dict(schedule)))


# ---------------------------------------------------------------------- the paper's format
def schedule_from_paper_dict(data: dict[str, Any]) -> CacheSchedule:
    try:
        cache_schedule = data["cache_schedule"]
        steps = cache_schedule["schedule"]
    except (KeyError, TypeError):
        raise ScheduleError("not an ECAD paper schedule: expected a 'cache_schedule' object with a 'schedule'.") from None
    step_keys = sorted(steps, key=int)
    if [int(k) for k in step_keys] != list(range(len(step_keys))):
        raise ScheduleError(f"paper schedule steps must be 0..N-1, got {step_keys}.")
    block_names = list(steps[step_keys[0]])
    components: list[str] = []
    for comps in steps[step_keys[0]].values():
        components += [c for c in comps if c not in components]
    recompute = torch.zeros(len(step_keys), len(block_names), len(components), dtype=torch.bool)
    exists = torch.zeros(len(block_names), len(components), dtype=torch.bool)
    for b, block in enumerate(block_names):
        for comp in steps[step_keys[0]][block]:
            exists[b, components.index(comp)] = True
    for s, key in enumerate(step_keys):
        if list(steps[key]) != block_names:
            raise ScheduleError(f"paper schedule step {key} has blocks {list(steps[key])}, expected {block_names}.")
        for b, block in enumerate(block_names):
            for comp, value in steps[key][block].items():
                if comp not in components or not exists[b, components.index(comp)]:
                    raise ScheduleError(f"paper schedule step {key}, block {block}: unexpected component {comp!r}.")
                recompute[s, b, components.index(comp)] = bool(value)
    paper = {k: v for k, v in data.items() if k != "cache_schedule"}
    paper["cache_schedule"] = {k: v for k, v in cache_schedule.items() if k != "schedule"}
    metadata: dict[str, Any] = {"source_format": "ecad-paper", "name": cache_schedule.get("name"), PAPER_KEY: paper}
    if "total_macs" in data.get("metrics", {}):
        metadata["macs"] = {"total_macs": data["metrics"]["total_macs"], "convention": "paper"}
    schedule = CacheSchedule(recompute, tuple(block_names), tuple(components), exists, metadata)
    adapter = adapter_for_paper_components(components)
    return schedule if adapter is None else _from_paper_names(schedule, adapter)


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
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ScheduleError(f"{path} is not valid JSON ({err}); is it a schedule file?") from None
    if not isinstance(data, dict):
        raise ScheduleError(f"{path}: a schedule file holds a JSON object, found {type(data).__name__}.")
    if data.get("format") == FORMAT:
        return schedule_from_dict(data)
    if "cache_schedule" in data:
        return schedule_from_paper_dict(data)
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
