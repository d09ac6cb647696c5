"""What ecad needs to know about a model family, and nothing else: where its blocks and components are.

An adapter names the transformer's block lists (``ModuleList`` attributes) and, for each, the attributes of the
component modules inside every block. The schedule's component axis is the union of those names; a block that lacks
one (SD3's last block has no ``ff_context``) gets ``exists = False`` there. Everything else in ecad (schedules,
runtime hooks, cost model, search) works from this description.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..schedule import ModelLayout, PaperNaming, ScheduleError
from .skip import BlockSkip


class UnsupportedModelError(ValueError):
    """No adapter knows this model; the message says how to add one."""


@dataclass(frozen=True)
class BlockGroup:
    """One ``ModuleList`` of blocks and the component attributes each of its blocks may have.

    Args:
        attr: dotted attribute of the ``ModuleList`` on the transformer.
        components: attribute names of the cacheable modules inside each block.
        prefix: prepended to the block index to name a block (FLUX: ``"single_"``).
        paper_names: the ECAD paper's name of each component, in the same order, where the paper's files use other
            names (FLUX: ``full_attn``...); empty when they are the same.
        feeds: ``(source, consumer)`` pairs where the source's output is used only as input of the consumer
            (FLUX single blocks: ``attn`` and ``proj_mlp`` feed only ``proj_out``). When the consumer replays, the
            source's fresh output is dead unless a later step reuses it; the runtime then skips computing it.
        skip: the blocks' forward without the work that only feeds replayed components (:mod:`ecad.adapters.skip`);
            ``None``: the blocks always run their own forward.
    """

    attr: str
    components: tuple[str, ...]
    prefix: str = ""
    paper_names: tuple[str, ...] = ()
    feeds: tuple[tuple[str, str], ...] = ()
    skip: BlockSkip | None = None

    def __post_init__(self) -> None:
        if self.paper_names and len(self.paper_names) != len(self.components):
            raise ValueError(f"block group {self.attr!r}: give one paper name per component or none.")
        for source, consumer in self.feeds:
            if source not in self.components or consumer not in self.components:
                raise ValueError(
                    f"block group {self.attr!r}: feeds pair {(source, consumer)} names an unknown component."
                )
        if {c for _, c in self.feeds} & {s for s, _ in self.feeds}:
            raise ValueError(f"block group {self.attr!r}: a consumer in feeds cannot itself be a source (no chains).")

    def paper_name(self, component: str) -> str:
        return self.paper_names[self.components.index(component)] if self.paper_names else component


@dataclass(frozen=True)
class ArchPreset:
    """A public architecture: its transformer config (no weights) and how the paper fed it for MAC counting."""

    name: str
    config: dict[str, Any]
    text_len: int
    hub_id: str | None = None
    paper_text_len: int | None = None

    def __post_init__(self) -> None:
        if self.paper_text_len is None:
            object.__setattr__(self, "paper_text_len", self.text_len)


def _get_attr(module: nn.Module, path: str) -> Any:
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


class ModelAdapter:
    """Base adapter: subclasses set the class attributes, a :class:`BlockSkip` per block kind where they can, and,
    for counting presets and bare transformers, :meth:`dummy_inputs`."""

    family: str = ""
    transformer_classes: tuple[str, ...] = ()
    groups: tuple[BlockGroup, ...] = ()
    presets: dict[str, ArchPreset] = {}
    timestep_arg: str = "timestep"
    sample_arg: str = "hidden_states"
    text_arg: str = "encoder_hidden_states"
    # What the transformer's timestep runs up to (PixArt/SD3: 1000 train steps; FLUX passes t/1000).
    timestep_scale: float = 1000.0
    default_text_len: int = 120
    vae_factor: int = 8  # pixels per position of the transformer's input, along height and width (VAE x packing)
    # Video models: the frames counted by default (``dummy_inputs`` then takes ``frames=``); ``None``: an image model.
    default_frames: int | None = None
    # Components that attend to the text only (TGATE-style heuristics stop recomputing them late in denoising).
    cross_attention: tuple[str, ...] = ()
    call_kwargs: dict[str, Any] = {}

    @property
    def component_names(self) -> tuple[str, ...]:
        names: list[str] = []
        for group in self.groups:
            names += [c for c in group.components if c not in names]
        return tuple(names)

    def matches(self, transformer: nn.Module) -> bool:
        return type(transformer).__name__ in self.transformer_classes

    def blocks(self, transformer: nn.Module) -> list[tuple[str, str, nn.Module, BlockGroup]]:
        """``(block_name, dotted_path, block, group)`` for every block, in execution order."""
        out = []
        for group in self.groups:
            blocks = _get_attr(transformer, group.attr)
            if not isinstance(blocks, nn.ModuleList):
                raise UnsupportedModelError(
                    f"{type(transformer).__name__} has no block list {group.attr!r} that the {self.family} adapter "
                    "expects; is this the right adapter for the model?"
                )
            out += [(f"{group.prefix}{i}", f"{group.attr}.{i}", block, group) for i, block in enumerate(blocks)]
        return out

    def components(self, transformer: nn.Module) -> list[tuple[int, int, str, nn.Module]]:
        """``(block_index, component_index, dotted_path, module)`` for every existing component."""
        names = self.component_names
        found = []
        for b, (_, block_path, block, group) in enumerate(self.blocks(transformer)):
            for comp in group.components:
                module = _get_attr(block, comp)
                if isinstance(module, nn.Module):
                    found.append((b, names.index(comp), f"{block_path}.{comp}", module))
        return found

    def block_skips(self, transformer: nn.Module) -> list[tuple[int, nn.Module, BlockSkip, dict[str, int]]]:
        """``(block_index, block, skip, {component: schedule index})`` for every block whose kind declares a skip
        forward that fits it (see :mod:`ecad.adapters.skip`)."""
        names = self.component_names
        found = []
        for b, (_, _, block, group) in enumerate(self.blocks(transformer)):
            if group.skip is not None and group.skip.supports(block):
                present = {c: names.index(c) for c in group.components if isinstance(_get_attr(block, c), nn.Module)}
                found.append((b, block, group.skip, present))
        return found

    def layout(self, transformer: nn.Module) -> ModelLayout:
        blocks = self.blocks(transformer)
        names = self.component_names
        exists = torch.zeros(len(blocks), len(names), dtype=torch.bool)
        for b, c, _, _ in self.components(transformer):
            exists[b, c] = True
        feeds = tuple(
            (b, names.index(source), names.index(consumer))
            for b, (*_, group) in enumerate(blocks)
            for source, consumer in group.feeds
            if exists[b, names.index(source)] and exists[b, names.index(consumer)]
        )
        return ModelLayout(tuple(name for name, *_ in blocks), names, exists, feeds, self.cross_attention)

    def bind(self, transformer: nn.Module) -> ModelAdapter:
        """The adapter to use for this model instance (adapters whose layout depends on the instance override it)."""
        return self

    # ---------------------------------------------------------------- the paper's component names
    @property
    def paper_naming(self) -> PaperNaming | None:
        """How this family's paper files name its components, where they differ from ecad's (else ``None``)."""
        names = frozenset(name for group in self.groups for name in group.paper_names)
        return PaperNaming(self.family, self.component_names, names, self._paper_pairs) if names else None

    def _paper_pairs(self, block_name: str) -> tuple[tuple[str, str], ...]:
        group = self.group_of(block_name)
        return tuple((name, group.paper_name(name)) for name in group.components)

    def group_of(self, block_name: str) -> BlockGroup:
        """The block group a block name belongs to: the longest prefix followed by an index."""
        candidates = [
            g for g in self.groups if block_name.startswith(g.prefix) and block_name[len(g.prefix) :].isdigit()
        ]
        if not candidates:
            raise ScheduleError(f"block {block_name!r} is not a {self.family} block name.")
        return max(candidates, key=lambda g: len(g.prefix))

    def pipeline_kwargs(self, pipe: Any) -> dict[str, Any]:
        """Keyword arguments ecad passes to every call of this family's pipelines (exact size, text length)."""
        return dict(self.call_kwargs)

    def encode_prompts(self, pipe: Any, prompts: list[str], guidance_scale: float) -> dict[str, torch.Tensor]:
        """Pipeline keyword arguments with the prompts' embeddings, computed once and sliced per batch."""
        raise NotImplementedError(f"the {self.family} adapter cannot pre-encode prompts")

    def call_with_embeddings(self) -> dict[str, Any]:
        """Keyword arguments that must accompany pre-encoded prompts (e.g. no default negative prompt)."""
        return {}

    def decode_latents(self, pipe: Any, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The pipeline's final latents to images in [0, 1] (what the pipeline itself would return)."""
        vae = pipe.vae
        latents = latents / vae.config.scaling_factor + (getattr(vae.config, "shift_factor", None) or 0.0)
        image = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
        return pipe.image_processor.postprocess(image, output_type="pt")

    def counting_context(self) -> AbstractContextManager[Any]:
        """Entered while the cost model runs the transformer on the meta device (:mod:`ecad.cost.counting`). Tensors
        there have shapes but no values: a family whose forward decides by values overrides this with a context that
        makes a shape-equivalent decision instead (MACs depend on shapes alone)."""
        return nullcontext()

    def pixel_multiple(self, config: dict[str, Any]) -> int:
        """Height and width must be multiples of this (the VAE's factor times the patch size)."""
        return self.vae_factor * int(config.get("patch_size") or 1)

    def dummy_inputs(
        self, config: Any, batch_size: int, height: int, width: int, text_len: int, device: torch.device | str
    ) -> dict[str, Any]:
        """Keyword inputs of one transformer call at this resolution, assumed for counting an architecture preset or a
        bare transformer (a pipeline's real call is observed instead, :mod:`ecad.cost.observe`). Video adapters
        (``default_frames`` set) take a further ``frames=`` keyword: the video's frames in pixel space."""
        raise NotImplementedError(f"the {self.family} adapter does not support MAC counting")
