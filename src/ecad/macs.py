"""The cost model: multiply-accumulates of every (block, component) and of everything outside them.

Transformer calls are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no weights in
memory), attributing counts to modules, at the shapes the pipeline really feeds its transformer: the calls of one
denoising step are observed during a real call of the pipeline (:mod:`ecad.observe`; a folder or hub id is built
without weights for that). A schedule then costs, per step, the MACs every step pays (embeddings, adaLN, final
layer, block-level projections) plus the MACs of the components it recomputes; step 0 recomputes everything.

What is counted, by convention:

- ``"full"`` (default): what ecad's runtime runs (``prune=True``): the attention core (QK^T and AV) included,
  recomputes whose output nothing reads left out (:mod:`ecad.pruning`), and the inputs of replayed components left
  out where the adapter declares a skip forward (:mod:`ecad.adapters.skip`): each block's skip forward is itself
  counted with the plan "nothing runs" and "only this component runs". ``report(...)["unpruned_total_macs"]``
  counts every recompute bit and every block's own forward (``prune=False``).
- ``"paper"``: the ECAD paper's numbers: attention core not counted, batch 2, fixed text length (PixArt 120,
  FLUX 512 tokens), every recompute bit. Reproduces the MACs in the paper's published schedule files.

FlopCounterMode counts matrix products and convolutions; element-wise work (norms, modulation, gating) costs no
MACs. Its time is in the latency cost model (:mod:`ecad.latency`). A forecast (the schedule's third action) is such
work too: 0 MACs, and per element of the component's output one multiply plus one multiply-add per further history
point (order 1: 3 floating-point operations, order 2: 5), against the thousands of MACs per element of recomputing;
the component's input is skipped as for a reuse.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import diffusers
import torch
from diffusers.utils.torch_utils import unwrap_module
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .adapters import ModelAdapter, UnsupportedModelError, adapter_for_config, find_preset, get_adapter, presets
from .loading import local_folder, pipeline_without_weights, read_transformer_config
from .names import CONVENTIONS
from .observe import TransformerCall, observe_calls, probe_call
from .schedule import CacheSchedule

# On the meta device scaled-dot-product attention decomposes into these two batched products: the attention core.
_ATTENTION_CORE_OPS = (torch.ops.aten.bmm, torch.ops.aten.baddbmm)

COUNTED = {
    "full": "what the runtime runs (prune=True): attention core included, dead recomputes and the inputs of "
            "replayed components left out; shapes of the observed pipeline call",
    "paper": "the ECAD paper's convention: attention core excluded, every recompute bit, fixed text length",
    "assumed": "attention core included, dead recomputes and replayed components' inputs left out; inputs assumed "
               "from the architecture (no pipeline call observed)",
}


@dataclass(frozen=True)
class CostTable:
    """MACs of one denoising step's transformer calls, split over (block, component) and the rest.

    ``outside_macs`` is what every step pays whatever the schedule says; ``input_macs`` what a component's input
    costs on top of the component, left out by the runtime when the component replays (``None``: not counted, the
    paper's convention).
    """

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
    input_macs: torch.Tensor | None = None  # int64 [blocks, components]
    counted: str = ""
    calls_per_step: int = 1
    frames: int = 1  # video frames (pixel space); 1 for an image model

    def full_schedule(self, num_steps: int) -> CacheSchedule:
        """No caching on this architecture: the reference for speedups."""
        return CacheSchedule.full(num_steps, self.block_names, self.component_names, self.exists, {"model": self.arch})

    @property
    def full_step_macs(self) -> int:
        return self.outside_macs + int(self.component_macs.sum())

    def step_macs(self, schedule: CacheSchedule, prune: bool | None = None) -> list[int]:
        """MACs of every denoising step under ``schedule`` (step 0 always full).

        ``prune=False`` counts every recompute bit and every block's own forward (the paper's semantics, the runtime
        with ``prune=False``); ``prune=True`` what the runtime runs by default: dead recomputes (:mod:`ecad.pruning`)
        and the inputs of replayed components left out. ``None``: the convention's own (full: True, paper: False).
        """
        self._check(schedule)
        if prune is None:
            prune = self.convention != "paper"
        if not prune:
            return [int(v) for v in schedule.step_costs(self.component_macs, self.outside_macs)]
        units, always = self.component_macs, self.outside_macs
        if self.input_macs is not None:
            units, always = units + self.input_macs, always - int(self.input_macs.sum())
        return [int(v) for v in schedule.step_costs(units, always, self.feeds)]

    def schedule_macs(self, schedule: CacheSchedule, prune: bool | None = None) -> int:
        return sum(self.step_macs(schedule, prune))

    def report(self, schedule: CacheSchedule) -> dict[str, Any]:
        """The numbers ``ecad macs --json`` prints: ``total_macs`` and ``mac_speedup`` as the convention counts."""
        per_step = self.step_macs(schedule)
        total = sum(per_step)
        pruned = self.schedule_macs(schedule, prune=True)
        unpruned = self.schedule_macs(schedule, prune=False)
        full = self.full_step_macs * schedule.num_steps
        return {
            "arch": self.arch,
            "convention": self.convention,
            "counted": self.counted,
            "height": self.height,
            "width": self.width,
            "frames": self.frames,
            "batch_size": self.batch_size,
            "text_len": self.text_len,
            "calls_per_step": self.calls_per_step,
            "num_steps": schedule.num_steps,
            "total_macs": total,
            "full_macs": full,
            "mac_speedup": full / total,
            "pruned_total_macs": pruned,
            "pruned_mac_speedup": full / pruned,
            "unpruned_total_macs": unpruned,
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


class _Plan:
    """A :class:`ecad.adapters.skip.BlockStep` for counting: these components run, the others replay ``outputs``."""

    def __init__(self, runs: set[str], outputs: dict[str, Any]) -> None:
        self._runs, self._outputs = runs, outputs

    def runs(self, component: str) -> bool:
        return component in self._runs

    def replay(self, component: str) -> Any:
        return self._outputs[component]

    def compute(self, component: str, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return module(*args, **kwargs)


def _macs(mapping: dict[Any, Any], fn: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, dict[Any, int]]]:
    with FlopCounterMode(display=False, depth=None, custom_mapping=mapping) as counter:
        fn(*args, **kwargs)
    counts = counter.get_flop_counts()
    return sum(counts.get("Global", {}).values()) // 2, counts


def _shape_key(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, dict):
        return tuple((k, _shape_key(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_shape_key(v) for v in value)
    return repr(value)


def _count_call(
    adapter: ModelAdapter, model: nn.Module, signature: str, convention: str,
) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """``(component_macs, outside_macs, input_macs)`` of one call; input MACs from counting every block's skip
    forward under the plans "nothing runs" and "only component c runs" (one block per kind and input shapes)."""
    mapping = {op: _zero for op in _ATTENTION_CORE_OPS} if convention == "paper" else {}
    skips = adapter.block_skips(model) if convention != "paper" else []
    block_inputs: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    outputs: dict[int, dict[str, Any]] = {}
    handles = []
    for b, block, _, present in skips:
        handles.append(block.register_forward_pre_hook(
            lambda _m, args, kwargs, b=b: block_inputs.__setitem__(b, (args, kwargs)), with_kwargs=True))
        for name in present:
            handles.append(getattr(block, name).register_forward_hook(
                lambda _m, _i, out, b=b, name=name: outputs.setdefault(b, {}).__setitem__(name, out)))
    args, kwargs = TransformerCall.meta_arguments(signature)
    try:
        with adapter.counting_context():
            total, counts = _macs(mapping, model, *args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    root = type(model).__name__
    layout = adapter.layout(model)
    component_macs = torch.zeros(layout.exists.shape, dtype=torch.int64)
    for b, c, path, _ in adapter.components(model):
        component_macs[b, c] = sum(counts.get(f"{root}.{path}", {}).values()) // 2
    if convention == "paper":
        return component_macs, total - int(component_macs.sum()), None
    input_macs = torch.zeros_like(component_macs)
    counted: dict[Any, dict[int, int]] = {}
    for b, block, skip, present in skips:
        bargs, bkwargs = block_inputs[b]
        kind = (type(block).__name__, tuple(present), tuple((n, tuple(p.shape)) for n, p in block.named_parameters()),
                _shape_key((bargs, bkwargs)), _shape_key(outputs[b]))
        if kind not in counted:
            plans = {c: {name} for name, c in present.items()} | {-1: set()}
            counted[kind] = {c: _macs(mapping, skip.forward, block, _Plan(runs, outputs[b]), *bargs, **bkwargs)[0]
                             for c, runs in plans.items()}
        plan_macs = counted[kind]
        for c in present.values():
            input_macs[b, c] = plan_macs[c] - plan_macs[-1] - component_macs[b, c]
    if bool((input_macs < 0).any()):
        raise RuntimeError("a skip forward counted fewer MACs with a component running than its module alone; "
                           "the adapter's skip forward does not match the block.")
    return component_macs, total - int(component_macs.sum()), input_macs


@functools.lru_cache(maxsize=64)
def _count(
    arch: str, config_json: str, signatures: tuple[str, ...], convention: str, adapter: ModelAdapter, height: int,
    width: int, counted: str, frames: int = 1,
) -> CostTable:
    model = _meta_model(adapter, config_json)
    adapter = adapter.bind(model)
    layout = adapter.layout(model)
    component_macs = torch.zeros(layout.exists.shape, dtype=torch.int64)
    input_macs = None if convention == "paper" else torch.zeros_like(component_macs)
    outside = 0
    for signature, times in Counter(signatures).items():
        components, rest, inputs = _count_call(adapter, model, signature, convention)
        component_macs += times * components
        outside += times * rest
        if input_macs is not None:
            input_macs += times * inputs
    args, kwargs = TransformerCall.meta_arguments(signatures[0])
    first = TransformerCall(args, kwargs)
    sample = first.argument(adapter.sample_arg, 0)
    text = first.argument(adapter.text_arg)
    text_len = int(text[0].shape[0] if isinstance(text, list) else text.shape[1]) if text is not None else 0
    return CostTable(
        arch, convention, height, width, int(sample.shape[0]), text_len, layout.block_names, layout.component_names,
        layout.exists, component_macs, outside, layout.feeds, input_macs, counted, len(signatures), frames,
    )


def _config_json(config: Any) -> str:
    return json.dumps(dict(config), sort_keys=True, default=str)


def count_calls(
    transformer: nn.Module, calls: Sequence[TransformerCall], height: int, width: int, *, convention: str = "full",
    adapter: ModelAdapter | None = None, arch: str | None = None, counted: str = COUNTED["full"],
) -> CostTable:
    """The cost table of one denoising step made of ``calls`` (observed with :func:`ecad.observe.observe_calls`),
    counted on a weightless copy of ``transformer``'s architecture."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown MAC convention {convention!r}; use one of {CONVENTIONS}.")
    model = unwrap_module(transformer)
    adapter = get_adapter(model, adapter)
    config = {**model.config, "_class_name": type(model).__name__}
    return _count(arch or type(model).__name__, _config_json(config), tuple(c.signature() for c in calls),
                  convention, adapter, height, width, counted)


def count_pipeline_macs(
    pipe: Any, height: int, width: int, *, convention: str = "full", guidance_scale: float | None = None,
    images: int = 1, arch: str | None = None, adapter: ModelAdapter | None = None, **call_kwargs: Any,
) -> CostTable:
    """MACs of one denoising step of ``pipe`` generating ``images`` images at ``height`` x ``width``: the transformer
    calls a real call of the pipeline makes (``guidance_scale=None``: the pipeline's default) are observed and
    counted. The paper's convention counts the paper's fixed inputs instead (as for a preset)."""
    if convention == "paper":
        return count_macs(pipe.transformer, height, width, convention="paper", adapter=adapter)
    calls = observe_calls(pipe, probe_call(pipe, height, width, guidance_scale, images, adapter, **call_kwargs))
    return count_calls(pipe.transformer, calls, height, width, convention=convention, adapter=adapter,
                       arch=arch or type(pipe).__name__)


def _assumed_signature(adapter: ModelAdapter, config: dict[str, Any], batch_size: int, height: int, width: int,
                       text_len: int, frames: int | None) -> str:
    video = {} if adapter.default_frames is None else {"frames": frames}
    return TransformerCall((), adapter.dummy_inputs(config, batch_size, height, width, text_len, "meta",
                                                    **video)).signature()


def observes_pipeline(model: Any) -> bool:
    """Whether :func:`count_macs` counts ``model`` at an observed pipeline call: a pipeline, a pipeline folder
    (``model_index.json``), ``tiny-shapes`` or a hub id; not a preset, a transformer, or a transformer-only folder."""
    if isinstance(model, nn.Module):
        return False
    if not isinstance(model, str):
        return True
    if model in presets():
        return False
    local = local_folder(model)
    return local is None or (local / "model_index.json").is_file()


def count_macs(
    model: Any,
    height: int,
    width: int,
    *,
    convention: str = "full",
    batch_size: int | None = None,
    text_len: int | None = None,
    adapter: ModelAdapter | None = None,
    guidance_scale: float | None = None,
    images: int = 1,
    frames: int | None = None,
) -> CostTable:
    """Count the MACs of one denoising step per (block, component) at ``height`` x ``width`` pixels.

    Args:
        model: what to count, from the most to the least observed:

            - a pipeline (``pipe``): one real call of it is observed (:func:`count_pipeline_macs`);
            - a pipeline folder, hub id or ``"tiny-shapes"``: the pipeline is built from its configs without weights
              (:func:`ecad.loading.pipeline_without_weights`) and its call observed the same way;
            - an architecture preset (``"pixart-alpha"``, ...): the inputs the preset documents (8x VAE, its text
              length, ``batch_size`` rows);
            - a transformer module or a transformer-only folder: inputs assumed from its config the same way.
        convention: ``"full"`` (what the runtime runs) or ``"paper"`` (the ECAD paper's convention).
        batch_size: transformer batch where inputs are assumed (default 2: one image with classifier-free
            guidance); a pipeline's is observed.
        text_len: text tokens where inputs are assumed (default: the preset's); a pipeline's are observed.
        frames: video frames where inputs are assumed (default: the video family's usual length; image models: none).
        adapter: for a model no registered adapter knows (it must implement ``dummy_inputs`` where inputs are
            assumed).
        guidance_scale: the observed call's guidance (``None``: the pipeline's default).
        images: images per observed call.

    Returns:
        A ``CostTable``: ``table.schedule_macs(schedule)``, ``table.step_macs(schedule)`` and
        ``table.report(schedule)`` price any schedule of the model.

    Example:
        ```python
        table = ecad.macs.count_macs("pixart-alpha", 256, 256, convention="paper")
        table.report(ecad.CacheSchedule.load("ours_fast.json"))["mac_speedup"]
        ```
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown MAC convention {convention!r}; use one of {CONVENTIONS}.")
    if observes_pipeline(model) and convention != "paper":
        if batch_size is not None or text_len is not None:
            raise ValueError("batch_size and text_len are observed from the pipeline call; give images= and "
                             "guidance_scale= instead (or count a preset or a transformer).")
        if isinstance(model, str):
            return count_pipeline_macs(pipeline_without_weights(model), height, width, guidance_scale=guidance_scale,
                                       images=images, arch=model, adapter=adapter)
        return count_pipeline_macs(model, height, width, guidance_scale=guidance_scale, images=images,
                                   adapter=adapter)
    preset = None
    if not isinstance(model, (str, nn.Module)):
        model = model.transformer
    if isinstance(model, nn.Module):
        model = unwrap_module(model)
        adapter = get_adapter(model, adapter)
        config, arch = {**model.config, "_class_name": type(model).__name__}, type(model).__name__
    elif model in presets():
        adapter, preset = find_preset(model)
        config, arch = preset.config, model
    else:
        config, arch = read_transformer_config(str(model)), str(model)
        adapter = adapter or adapter_for_config(config)
        if adapter is None:
            raise UnsupportedModelError(f"ecad has no adapter for transformer class {config.get('_class_name')!r}.")
    if text_len is None:
        text_len = adapter.default_text_len
        if preset is not None:
            text_len = preset.paper_text_len if convention == "paper" else preset.text_len
    if batch_size is None:
        batch_size = 2
    if adapter.default_frames is None and frames is not None:
        raise ValueError(f"{arch} is an image model: frames apply to video models only.")
    frames = frames or adapter.default_frames
    multiple = adapter.pixel_multiple(config)
    if height % multiple or width % multiple or height <= 0 or width <= 0:
        raise ValueError(f"{arch} needs height and width that are positive multiples of {multiple}, got {height}x{width}.")
    signature = _assumed_signature(adapter, config, batch_size, height, width, text_len, frames)
    counted = COUNTED["paper" if convention == "paper" else ("full" if preset is not None else "assumed")]
    if preset is not None and convention != "paper":
        video = f"{frames} frames, " if frames else ""
        counted = ("attention core included, dead recomputes and replayed components' inputs left out; the "
                   f"preset's inputs: its VAE and patching, {video}{text_len} text tokens, batch {batch_size}")
    return _count(arch, _config_json(config), (signature,), convention, adapter, height, width, counted, frames or 1)
