"""Model adapters: the only place in ecad that knows how a model family lays out its blocks."""

from __future__ import annotations

from collections.abc import Iterable

from diffusers.utils.torch_utils import unwrap_module
from torch import nn

from .base import ArchPreset, BlockGroup, ModelAdapter, ModelLayout, UnsupportedModelError
from .flux import FluxAdapter
from .generic import GenericAdapter
from .pixart import PixArtAdapter
from .sana import SanaAdapter
from .sd3 import SD3Adapter

ADAPTERS: list[ModelAdapter] = [PixArtAdapter(), FluxAdapter(), SD3Adapter(), SanaAdapter()]

__all__ = [
    "ADAPTERS", "ArchPreset", "BlockGroup", "GenericAdapter", "ModelAdapter", "ModelLayout", "UnsupportedModelError",
    "adapter_for_paper_components", "find_preset", "get_adapter", "register_adapter",
]


def register_adapter(adapter: ModelAdapter) -> ModelAdapter:
    """Make ecad support another model family (see docs/guides/adding-a-model.md).

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
    return adapter


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
    supported = sorted({cls for a in ADAPTERS for cls in a.transformer_classes})
    raise UnsupportedModelError(
        f"ecad has no adapter for {type(transformer).__name__}; supported transformers: {', '.join(supported)}. "
        "Pass `adapter=ecad.GenericAdapter(block_list, components)` or register one with "
        "`ecad.register_adapter` (see docs/guides/adding-a-model.md)."
    )


def adapter_for_paper_components(names: Iterable[str]) -> ModelAdapter | None:
    """The registered adapter whose paper files use these (renamed) component names, if any."""
    wanted = set(names)
    for adapter in ADAPTERS:
        if adapter.paper_component_names and wanted <= adapter.paper_component_names:
            return adapter
    return None


def find_preset(name: str) -> tuple[ModelAdapter, ArchPreset]:
    for adapter in ADAPTERS:
        if name in adapter.presets:
            return adapter, adapter.presets[name]
    known = sorted(p for a in ADAPTERS for p in a.presets)
    raise UnsupportedModelError(f"unknown architecture preset {name!r}; known presets: {', '.join(known)}.")
