"""Model adapters: the only place in ecad that knows how a model family lays out its blocks."""

from __future__ import annotations

import logging
from typing import Any

from diffusers.utils.torch_utils import unwrap_module
from torch import nn

from ..names import did_you_mean
from ..schedule import register_paper_naming
from .auto import AutoAdapter, discover_adapter
from .base import ArchPreset, BlockGroup, ModelAdapter, ModelLayout, UnsupportedModelError
from .flux import FluxAdapter
from .flux2 import Flux2Adapter
from .generic import GenericAdapter
from .hunyuan_video import HunyuanVideo15Adapter
from .ltx2 import LTX2Adapter
from .pixart import PixArtAdapter
from .qwen_image import QwenImageAdapter
from .sana import SanaAdapter
from .sd3 import SD3Adapter
from .wan import WanAdapter
from .z_image import ZImageAdapter

ADAPTERS: list[ModelAdapter] = [
    PixArtAdapter(),
    FluxAdapter(),
    SD3Adapter(),
    SanaAdapter(),
    WanAdapter(),
    QwenImageAdapter(),
    Flux2Adapter(),
    HunyuanVideo15Adapter(),
    LTX2Adapter(),
    ZImageAdapter(),
]

__all__ = [
    "ADAPTERS",
    "ArchPreset",
    "AutoAdapter",
    "BlockGroup",
    "GenericAdapter",
    "ModelAdapter",
    "ModelLayout",
    "UnsupportedModelError",
    "adapter_for_config",
    "discover_adapter",
    "find_preset",
    "get_adapter",
    "model_source",
    "presets",
    "register_adapter",
    "register_model_source",
]


logger = logging.getLogger(__name__)
_LOGGED: set[str] = set()  # transformer classes whose found layout was logged
# Names that stand for a model folder: the shipped tiny-shapes model registers its own when it is imported.
_MODEL_SOURCES: dict[str, str] = {}


def register_adapter(adapter: ModelAdapter) -> ModelAdapter:
    """Make ecad support another model family (see docs/guides/adding-a-model.md); its paper files' component names,
    if it declares them, are read and written by :class:`ecad.CacheSchedule` from now on.

    Args:
        adapter: the adapter; it takes precedence over the ones registered before it.

    Returns:
        The same adapter.

    Example:
        ```python
        ecad.register_adapter(ecad.GenericAdapter("blocks", "attn|mlp", transformer_classes=("MyDiT",)))
        ```
    """
    ADAPTERS.insert(0, adapter)
    _register_paper_naming(adapter)
    return adapter


def _register_paper_naming(adapter: ModelAdapter) -> None:
    if adapter.paper_naming is not None:
        register_paper_naming(adapter.paper_naming)


for _adapter in reversed(ADAPTERS):  # the first listed ends first among the namings, as among the adapters
    _register_paper_naming(_adapter)


def get_adapter(transformer: nn.Module, adapter: ModelAdapter | None = None) -> ModelAdapter:
    """The adapter for ``transformer``: ``adapter`` if given, else the first registered one that matches. A
    ``torch.compile`` wrapper is looked through (``pipe.transformer = torch.compile(pipe.transformer)``)."""
    transformer = unwrap_module(transformer)
    if adapter is not None:
        if not adapter.matches(transformer):
            raise UnsupportedModelError(
                f"the {adapter.family} adapter does not fit {type(transformer).__name__} (no block list "
                f"{[g.attr for g in adapter.groups] or getattr(adapter, 'block_list', '?')} or another class)."
            )
        return adapter.bind(transformer)
    for candidate in ADAPTERS:
        if candidate.matches(transformer):
            return candidate.bind(transformer)
    try:
        found = discover_adapter(transformer)
    except UnsupportedModelError:
        supported = sorted({cls for a in ADAPTERS for cls in a.transformer_classes})
        raise UnsupportedModelError(
            f"ecad has no adapter for {type(transformer).__name__} and found no repeated blocks in it; supported "
            f"transformers: {', '.join(supported)}. Pass `adapter=ecad.GenericAdapter(block_list, components)` or "
            "register one with `ecad.register_adapter` (see docs/guides/adding-a-model.md)."
        ) from None
    if type(transformer).__name__ not in _LOGGED:
        _LOGGED.add(type(transformer).__name__)
        logger.warning(
            "ecad has no adapter for %s and uses the layout it found:\n%s\nCheck it once; keep it with "
            "`ecad.adapters.discover_adapter(transformer).save(path)` and pass "
            "`adapter=ecad.adapters.AutoAdapter.load(path)`, or name it with `ecad.GenericAdapter`.",
            type(transformer).__name__,
            found.describe(),
        )
    return found


def adapter_for_config(config: dict[str, Any]) -> ModelAdapter | None:
    """The registered adapter for a transformer config (its ``_class_name``), or ``None``."""
    return next((a for a in ADAPTERS if config.get("_class_name") in a.transformer_classes), None)


def presets() -> dict[str, tuple[ModelAdapter, ArchPreset]]:
    """Every registered architecture preset by name, with its adapter (the first registered wins a name)."""
    found: dict[str, tuple[ModelAdapter, ArchPreset]] = {}
    for adapter in ADAPTERS:
        for name, preset in adapter.presets.items():
            found.setdefault(name, (adapter, preset))
    return found


def register_model_source(name: str, source: str) -> None:
    """Let ``name`` stand for the model folder or hub id ``source`` (as a preset name stands for its hub id)."""
    _MODEL_SOURCES[name] = source


def model_source(model: str) -> str:
    """Map a registered name (``tiny-shapes``) to its folder and a preset name to its hub id; folders and hub ids
    pass through. Two names with the same source load the same pipeline."""
    if model in _MODEL_SOURCES:
        return _MODEL_SOURCES[model]
    _, preset = presets().get(model, (None, None))
    return preset.hub_id if preset is not None and preset.hub_id else model


def find_preset(name: str) -> tuple[ModelAdapter, ArchPreset]:
    found = presets()
    if name not in found:
        known = sorted(found)
        raise UnsupportedModelError(
            f"unknown architecture preset {name!r}{did_you_mean(name, known)}; known presets: {', '.join(known)}."
        )
    return found[name]
