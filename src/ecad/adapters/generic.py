"""Any diffusers transformer that keeps its blocks in a ``ModuleList``: name the list and the components.

    adapter = GenericAdapter("transformer_blocks", ("attn1", "attn2", "ff"))   # or a pattern: "attn*|ff"
    with ecad.enable_cache(pipe, schedule, adapter=adapter): ...
    ecad.register_adapter(adapter)                                          # or make it the default for the class

Components are attributes of each block (dotted paths allowed). A pattern (``fnmatch`` alternatives separated by
``|``) is matched against the blocks' direct children when the adapter meets a model, so one adapter serves
variants whose blocks differ (a block lacking a component gets ``exists = False``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from torch import nn

from .base import BlockGroup, ModelAdapter, UnsupportedModelError, _get_attr


class GenericAdapter(ModelAdapter):
    """Adapter for one block list, configured by arguments instead of a subclass.

    Args:
        block_list: dotted attribute of the ``ModuleList`` of blocks (``"transformer_blocks"``).
        components: component attribute names, or a pattern such as ``"attn*|ff"``.
        transformer_classes: class names it applies to when registered (default: any model with ``block_list``).
        timestep_arg: name of the transformer's timestep argument.
        sample_arg: name of the transformer's latent argument.
        family: a name for messages (default: ``generic(<block_list>)``).
    """

    def __init__(
        self,
        block_list: str,
        components: Sequence[str] | str,
        *,
        transformer_classes: Sequence[str] = (),
        timestep_arg: str = "timestep",
        sample_arg: str = "hidden_states",
        family: str = "",
    ) -> None:
        self.block_list = block_list
        self.pattern = components if isinstance(components, str) else None
        self.family = family or f"generic({block_list})"
        self.transformer_classes = tuple(transformer_classes)
        self.timestep_arg = timestep_arg
        self.sample_arg = sample_arg
        self.groups = () if self.pattern else (BlockGroup(block_list, tuple(components)),)

    def matches(self, transformer: nn.Module) -> bool:
        if self.transformer_classes and type(transformer).__name__ not in self.transformer_classes:
            return False
        return isinstance(_get_attr(transformer, self.block_list), nn.ModuleList)

    def bind(self, transformer: nn.Module) -> ModelAdapter:
        if self.pattern is None:
            return self
        blocks = _get_attr(transformer, self.block_list)
        if not isinstance(blocks, nn.ModuleList):
            raise UnsupportedModelError(f"{type(transformer).__name__} has no block list {self.block_list!r}.")
        alternatives = self.pattern.split("|")
        names: list[str] = []
        for block in blocks:
            names += [
                n
                for n, _ in block.named_children()
                if n not in names and any(fnmatch.fnmatchcase(n, p) for p in alternatives)
            ]
        if not names:
            raise UnsupportedModelError(
                f"no child of {type(transformer).__name__}.{self.block_list}[i] matches {self.pattern!r}; "
                f"children are {[n for n, _ in blocks[0].named_children()]}."
            )
        bound = GenericAdapter(
            self.block_list,
            tuple(names),
            transformer_classes=self.transformer_classes,
            timestep_arg=self.timestep_arg,
            sample_arg=self.sample_arg,
            family=self.family,
        )
        return bound

    def __repr__(self) -> str:
        components: Any = self.pattern or list(self.component_names)
        return f"GenericAdapter({self.block_list!r}, {components!r})"
