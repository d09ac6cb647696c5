"""A layout found by looking at a transformer no adapter knows: its repeated blocks and their attention and
feed-forward modules.

A block list is a ``ModuleList`` held directly by the transformer whose entries are all of one class, with at least
one component in it. A component is a direct child of a block that is an attention module (diffusers'
``AttentionModuleMixin``, or a class whose name ends in ``Attention``) or a feed-forward (a class named like
``FeedForward``, ``MLP``, ``FFN``, or a child named ``ff``, ``ffn``, ``mlp``, ``feed_forward`` or ``*_mlp``/``ff_*``),
and, in a parallel block (FLUX's single-stream blocks: attention and ``proj_mlp`` side by side), the ``proj_out``
that mixes their outputs.
Its raw output is cached, as with a hand-written adapter; there is no skip forward (blocks run their own forward).

What was found is logged when ``enable_cache`` meets such a model; check it once, then save it
(:meth:`AutoAdapter.save`) and pass ``adapter=AutoAdapter.load(path)``, or name the layout yourself with
:class:`~ecad.adapters.GenericAdapter`.

    adapter = discover_adapter(pipe.transformer)
    print(adapter.describe()); adapter.save("layout.json")
    ecad.enable_cache(pipe, schedule, adapter=AutoAdapter.load("layout.json"))
"""

from __future__ import annotations

import fnmatch
import inspect
import json
from pathlib import Path
from typing import Any

from diffusers.models.attention import AttentionModuleMixin
from torch import nn

from .base import BlockGroup, ModelAdapter, UnsupportedModelError

_FEED_FORWARD_CLASSES = ("*FeedForward*", "*MLP*", "*Mlp", "*FFN*", "*SwiGLU*")
_FEED_FORWARD_NAMES = ("ff", "ffn", "mlp", "feed_forward", "*_mlp", "ff_*", "*_ff")
_TIMESTEP_ARGS = ("timestep", "timesteps", "t")
_SAMPLE_ARGS = ("hidden_states", "sample", "x")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def is_component(name: str, module: nn.Module) -> bool:
    """Whether a block's child ``name`` is an attention module or a feed-forward."""
    cls = type(module).__name__
    if isinstance(module, AttentionModuleMixin) or cls.endswith("Attention"):
        return True
    if "Norm" in cls or isinstance(module, (nn.Dropout, nn.Identity)) or not any(True for _ in module.parameters()):
        return False
    return _matches(cls, _FEED_FORWARD_CLASSES) or _matches(name, _FEED_FORWARD_NAMES)


def find_groups(transformer: nn.Module) -> tuple[BlockGroup, ...]:
    """The block lists of ``transformer`` and each one's components, in the order the transformer holds them."""
    groups = []
    for attr, blocks in transformer.named_children():
        if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
            continue
        if len({type(block) for block in blocks}) != 1:
            continue
        components: list[str] = []
        for block in blocks:
            components += [n for n, child in block.named_children() if n not in components and is_component(n, child)]
            if "proj_mlp" in components and isinstance(getattr(block, "proj_out", None), nn.Linear):
                components += [] if "proj_out" in components else ["proj_out"]  # a parallel block's output mix
        if components:
            groups.append(BlockGroup(attr, tuple(components), prefix=f"{attr}." if groups else ""))
    return tuple(groups)


def _argument(transformer: nn.Module, names: tuple[str, ...]) -> str:
    params = list(inspect.signature(type(transformer).forward).parameters)[1:]
    return next((n for n in names if n in params), params[0] if params else names[0])


class AutoAdapter(ModelAdapter):
    """An adapter for one transformer class, from :func:`discover_adapter` or a saved layout file.

    Args:
        transformer_class: the class name it applies to.
        groups: the block lists and their components.
        timestep_arg, sample_arg: the transformer's timestep and latent arguments.
    """

    def __init__(
        self,
        transformer_class: str,
        groups: tuple[BlockGroup, ...],
        timestep_arg: str = "timestep",
        sample_arg: str = "hidden_states",
    ) -> None:
        self.family = f"auto({transformer_class})"
        self.transformer_classes = (transformer_class,)
        self.groups = groups
        self.timestep_arg = timestep_arg
        self.sample_arg = sample_arg

    def describe(self) -> str:
        """The layout in a few lines, for a user to check."""
        lines = [f"{self.transformer_classes[0]} (timestep: {self.timestep_arg!r}, latents: {self.sample_arg!r})"]
        lines += [f"  {g.attr}: blocks {g.prefix or ''}0.., components {', '.join(g.components)}" for g in self.groups]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "transformer_class": self.transformer_classes[0],
            "timestep_arg": self.timestep_arg,
            "sample_arg": self.sample_arg,
            "groups": [{"attr": g.attr, "components": list(g.components), "prefix": g.prefix} for g in self.groups],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> AutoAdapter:
        try:
            data = json.loads(Path(path).read_text())
            groups = tuple(
                BlockGroup(g["attr"], tuple(g["components"]), prefix=g.get("prefix", "")) for g in data["groups"]
            )
            return cls(data["transformer_class"], groups, data["timestep_arg"], data["sample_arg"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UnsupportedModelError(
                f"{path} is not a layout file saved by AutoAdapter.save ({err}); save it "
                "again from `ecad.adapters.discover_adapter(transformer)`."
            ) from None

    def __repr__(self) -> str:
        return f"AutoAdapter({self.to_dict()!r})"


def discover_adapter(transformer: nn.Module) -> AutoAdapter:
    """The layout of a transformer no adapter knows, found from its modules (raises if it has no block list)."""
    groups = find_groups(transformer)
    if not groups:
        raise UnsupportedModelError(
            f"ecad has no adapter for {type(transformer).__name__} and found no list of repeated blocks with "
            "attention or feed-forward modules in it."
        )
    return AutoAdapter(
        type(transformer).__name__, groups, _argument(transformer, _TIMESTEP_ARGS), _argument(transformer, _SAMPLE_ARGS)
    )
