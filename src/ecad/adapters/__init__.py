"""Model adapters: the only place in ecad that knows how a model family lays out its blocks."""

from __future__ import annotations

from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter, ModelLayout, UnsupportedModelError
from .pixart import PixArtAdapter

ADAPTERS: list[ModelAdapter] = [PixArtAdapter()]

__all__ = [
    "ADAPTERS", "ArchPreset", "BlockGroup", "ModelAdapter", "ModelLayout", "UnsupportedModelError",
    "find_preset", "get_adapter", "register_adapter",
]


def register_adapter(adapter: ModelAdapter) -> ModelAdapter:
    """Make ecad support another model family (see the README, 'Adding a model')."""
    ADAPTERS.insert(0, adapter)
    return adapter


def get_adapter(transformer: nn.Module) -> ModelAdapter:
    for adapter in ADAPTERS:
        if adapter.matches(transformer):
            return adapter
    supported = sorted({cls for a in ADAPTERS for cls in a.transformer_classes})
    raise UnsupportedModelError(
        f"ecad has no adapter for {type(transformer).__name__}; supported transformers: {', '.join(supported)}. "
        "Register one with `ecad.adapters.register_adapter` (README: 'Adding a model')."
    )


def find_preset(name: str) -> tuple[ModelAdapter, ArchPreset]:
    for adapter in ADAPTERS:
        if name in adapter.presets:
            return adapter, adapter.presets[name]
    known = sorted(p for a in ADAPTERS for p in a.presets)
    raise UnsupportedModelError(f"unknown architecture preset {name!r}; known presets: {', '.join(known)}.")
