"""The cost model: multiply-accumulates of every (block, component) and of everything outside them.

One forward pass of the transformer is counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device
(no weights in memory, about a second for PixArt-XL-2), attributing counts to modules. A schedule then costs, per
step, the MACs outside the components (embeddings, adaLN, final layer, block-level projections) plus the MACs of
the components it recomputes; step 0 recomputes everything.

Conventions:
- ``"full"`` (default): the true cost, attention core (QK^T and AV) included, at the model's real text length.
- ``"paper"``: the ECAD paper's numbers: attention core not counted, batch 2, fixed text length (PixArt 120,
  FLUX 512 tokens). Reproduces the MACs in the paper's published schedule files.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .adapters import ADAPTERS, ModelAdapter, UnsupportedModelError, find_preset, get_adapter
from .schedule import CacheSchedule

CONVENTIONS = ("full", "paper")

# On the meta device scaled-dot-product attention decomposes into these two batched products: the attention core.
_ATTENTION_CORE_OPS = (torch.ops.aten.bmm, torch.ops.aten.baddbmm)


@dataclass(frozen=True)
class CostTable:
    """MACs of one transformer call, split over (block, component) and the rest."""

    arch: str
    convention: str
    height: int
    width: int
    batch_size: int
    text_len: int
    block_names: tuple[str, ...]
    component_names: tuple[str, ...]
    exists: torch.Tensor  # bool [blocks, components]
    component_macs: torch.Tensor  # int64 [blocks, components], 0 where a component does not exist
    outside_macs: int
    feeds: tuple[tuple[int, int, int], ...] = ()  # "X only feeds Y" pairs, see ecad.pruning

    def full_schedule(self, num_steps: int) -> CacheSchedule:
        """No caching on this architecture: the reference for speedups."""
        return CacheSchedule.full(num_steps, self.block_names, self.component_names, self.exists, {"model": self.arch})

    @property
    def full_step_macs(self) -> int:
        return self.outside_macs + int(self.component_macs.sum())

    def step_macs(self, schedule: CacheSchedule, prune: bool = False) -> list[int]:
        """MACs of every denoising step under ``schedule`` (step 0 always full).

        ``prune=False`` counts every recompute bit (the paper's semantics); ``prune=True`` leaves out the recomputes
        whose output nothing reads, which the runtime skips by default (:mod:`ecad.pruning`).
        """
        self._check(schedule)
        per_step = schedule.step_costs(self.component_macs, self.outside_macs, self.feeds if prune else ())
        return [int(v) for v in per_step]

    def schedule_macs(self, schedule: CacheSchedule) -> int:
        return sum(self.step_macs(schedule))

    def report(self, schedule: CacheSchedule) -> dict[str, Any]:
        """The numbers ``ecad macs --json`` prints."""
        per_step = self.step_macs(schedule)
        total = sum(per_step)
        pruned = sum(self.step_macs(schedule, prune=True))
        full = self.full_step_macs * schedule.num_steps
        return {
            "arch": self.arch,
            "convention": self.convention,
            "height": self.height,
            "width": self.width,
            "batch_size": self.batch_size,
            "text_len": self.text_len,
            "num_steps": schedule.num_steps,
            "total_macs": total,
            "full_macs": full,
            "speedup": full / total,
            "pruned_total_macs": pruned,
            "pruned_speedup": full / pruned,
            "per_step": per_step,
            "outside_macs_per_step": self.outside_macs,
            "recompute_fraction": schedule.stats()["recompute_fraction"],
        }

    def _check(self, schedule: CacheSchedule) -> None:
        if (
            schedule.block_names != self.block_names
            or schedule.component_names != self.component_names
            or not torch.equal(schedule.exists, self.exists)
        ):
            raise ValueError(
                f"schedule layout ({schedule.num_blocks} blocks, components {list(schedule.component_names)}) does "
                f"not match the {self.arch} cost table ({len(self.block_names)} blocks, components "
                f"{list(self.component_names)}); count MACs for the architecture the schedule was made for."
            )


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


@functools.lru_cache(maxsize=4)
def _meta_model(adapter: ModelAdapter, config_json: str) -> nn.Module:
    """The architecture without weights; kept for counting it at other resolutions (building FLUX takes seconds)."""
    config = json.loads(config_json)
    class_name = config.get("_class_name") or adapter.transformer_classes[0]
    cls = getattr(diffusers, class_name)
    with torch.device("meta"):
        model = cls.from_config(config)
    return model.to("meta").eval()


def read_transformer_config(path_or_hub_id: str) -> dict[str, Any]:
    """The transformer config of a pipeline folder, a transformer folder, or a hub id (downloads only the config)."""
    path = Path(path_or_hub_id)
    for candidate in (path / "transformer" / "config.json", path / "config.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    if path.exists():
        raise FileNotFoundError(f"{path} has no transformer/config.json or config.json; is it a diffusers model folder?")
    if path_or_hub_id.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder not found: {path_or_hub_id}")
    if path_or_hub_id.count("/") != 1:
        known = sorted(p for a in ADAPTERS for p in a.presets)
        raise UnsupportedModelError(
            f"{path_or_hub_id!r} is neither an architecture preset ({', '.join(known)}), a model folder, "
            "nor a hub id of the form 'org/name'."
        )
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(path_or_hub_id, "config.json", subfolder="transformer")).read_text())
    except Exception as err:  # the hub client raises many types; all mean "could not get the config"
        raise FileNotFoundError(
            f"cannot read the transformer config of {path_or_hub_id!r}: {str(err).splitlines()[0]}"
        ) from None


def _adapter_for_config(config: dict[str, Any]) -> ModelAdapter:
    name = config.get("_class_name")
    for adapter in ADAPTERS:
        if name in adapter.transformer_classes:
            return adapter
    raise UnsupportedModelError(f"ecad has no adapter for transformer class {name!r}.")


@functools.lru_cache(maxsize=64)
def _count(
    arch: str, config_json: str, height: int, width: int, convention: str, batch_size: int, text_len: int,
    adapter: ModelAdapter,
) -> CostTable:
    config = json.loads(config_json)
    model = _meta_model(adapter, config_json)
    adapter = adapter.bind(model)
    inputs = adapter.dummy_inputs(config, batch_size, height, width, text_len, "meta")
    mapping = {op: _zero for op in _ATTENTION_CORE_OPS} if convention == "paper" else {}
    with FlopCounterMode(display=False, depth=None, custom_mapping=mapping) as counter:
        model(**inputs)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    layout = adapter.layout(model)
    component_macs = torch.zeros(layout.exists.shape, dtype=torch.int64)
    for b, c, path, _ in adapter.components(model):
        component_macs[b, c] = sum(counts.get(f"{root}.{path}", {}).values()) // 2
    total = sum(counts["Global"].values()) // 2
    return CostTable(
        arch, convention, height, width, batch_size, text_len, layout.block_names, layout.component_names,
        layout.exists, component_macs, total - int(component_macs.sum()), layout.feeds,
    )


def count_macs(
    model: str | nn.Module,
    height: int,
    width: int,
    *,
    convention: str = "full",
    batch_size: int | None = None,
    text_len: int | None = None,
    adapter: ModelAdapter | None = None,
) -> CostTable:
    """Count the MACs of one transformer call per (block, component) at ``height`` x ``width`` pixels.

    Args:
        model: an architecture preset (``"pixart-alpha"``, ...), a pipeline/transformer folder or hub id (only
            its transformer config is read), or a transformer module (its config is used; its weights are not).
        convention: ``"full"`` (attention core counted) or ``"paper"`` (the ECAD paper's convention).
        batch_size: transformer batch (default 2: one image with classifier-free guidance).
        text_len: text tokens (default: the preset's; the paper convention uses the paper's fixed length).
        adapter: for a model no registered adapter knows (it must implement ``dummy_inputs``).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown MAC convention {convention!r}; use one of {CONVENTIONS}.")
    preset = None
    if isinstance(model, nn.Module):
        adapter = get_adapter(model, adapter)
        config, arch = {**model.config, "_class_name": type(model).__name__}, type(model).__name__
    elif isinstance(model, str) and any(model in a.presets for a in ADAPTERS):
        adapter, preset = find_preset(model)
        config, arch = preset.config, model
    else:
        config, arch = read_transformer_config(str(model)), str(model)
        adapter = adapter or _adapter_for_config(config)
    if text_len is None:
        text_len = adapter.default_text_len
        if preset is not None:
            text_len = preset.paper_text_len if convention == "paper" else preset.text_len
    if batch_size is None:
        batch_size = 2
    multiple = adapter.pixel_multiple(config)
    if height % multiple or width % multiple or height <= 0 or width <= 0:
        raise ValueError(f"{arch} needs height and width that are positive multiples of {multiple}, got {height}x{width}.")
    config_json = json.dumps(config, sort_keys=True, default=str)
    return _count(arch, config_json, height, width, convention, batch_size, text_len, adapter)
