"""The cost model: multiply-accumulates of every (block, component) and of everything outside them.

Transformer calls are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no weights in
memory), attributing counts to modules, at the shapes the pipeline really feeds its transformer: the calls of one
denoising step are observed during a real call of the pipeline (:mod:`ecad.cost.observe`; a folder or hub id is
built without weights for that: :func:`ecad.models.macs.count_macs`). A schedule then costs, per step, the MACs every
step pays (embeddings, adaLN, final layer, block-level projections) plus the MACs of the components it recomputes;
step 0 recomputes everything.

What is counted, by convention:

- ``"full"`` (default): what ecad's runtime runs (``prune=True``): the attention core (QK^T and AV) included,
  recomputes whose output nothing reads left out (:mod:`ecad.schedule.pruning`), and the inputs of replayed components
  left out where the adapter declares a skip forward (:mod:`ecad.adapters.skip`): each block's skip forward is itself
  counted with the plan "nothing runs" and "only this component runs". ``report(...)["unpruned_total_macs"]``
  counts every recompute bit and every block's own forward (``prune=False``).
- ``"paper"``: the ECAD paper's numbers: attention core not counted, batch 2, fixed text length (PixArt 120,
  FLUX 512 tokens), every recompute bit. Reproduces the MACs in the paper's published schedule files.

FlopCounterMode counts matrix products and convolutions; element-wise work (norms, modulation, gating) costs no
MACs. Its time is in the latency cost model (:mod:`ecad.cost.latency`). A forecast (the schedule's third action) is such
work too: 0 MACs, and per element of the component's output one multiply plus one multiply-add per further history
point (order 1: 3 floating-point operations, order 2: 5), against the thousands of MACs per element of recomputing;
the component's input is skipped as for a reuse.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import diffusers
import torch
from diffusers.utils.torch_utils import unwrap_module
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..adapters import ArchPreset, ModelAdapter, get_adapter
from ..names import CONVENTIONS
from .observe import TransformerCall, observe_calls, probe_call
from .table import COUNTED, CostTable

# On the meta device scaled-dot-product attention decomposes into these two batched products: the attention core.
_ATTENTION_CORE_OPS = (torch.ops.aten.bmm, torch.ops.aten.baddbmm)


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
    adapter: ModelAdapter,
    model: nn.Module,
    signature: str,
    convention: str,
) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """``(component_macs, outside_macs, input_macs)`` of one call; input MACs from counting every block's skip
    forward under the plans "nothing runs" and "only component c runs" (one block per kind and input shapes)."""
    mapping = {op: _zero for op in _ATTENTION_CORE_OPS} if convention == "paper" else {}
    skips = adapter.block_skips(model) if convention != "paper" else []
    block_inputs: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    outputs: dict[int, dict[str, Any]] = {}
    handles = []
    for b, block, _, present in skips:
        handles.append(
            block.register_forward_pre_hook(
                lambda _m, args, kwargs, b=b: block_inputs.__setitem__(b, (args, kwargs)), with_kwargs=True
            )
        )
        for name in present:
            handles.append(
                getattr(block, name).register_forward_hook(
                    lambda _m, _i, out, b=b, name=name: outputs.setdefault(b, {}).__setitem__(name, out)
                )
            )
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
        kind = (
            type(block).__name__,
            tuple(present),
            tuple((n, tuple(p.shape)) for n, p in block.named_parameters()),
            _shape_key((bargs, bkwargs)),
            _shape_key(outputs[b]),
        )
        if kind not in counted:
            plans = {c: {name} for name, c in present.items()} | {-1: set()}
            counted[kind] = {
                c: _macs(mapping, skip.forward, block, _Plan(runs, outputs[b]), *bargs, **bkwargs)[0]
                for c, runs in plans.items()
            }
        plan_macs = counted[kind]
        for c in present.values():
            input_macs[b, c] = plan_macs[c] - plan_macs[-1] - component_macs[b, c]
    if bool((input_macs < 0).any()):
        raise RuntimeError(
            "a skip forward counted fewer MACs with a component running than its module alone; "
            "the adapter's skip forward does not match the block."
        )
    return component_macs, total - int(component_macs.sum()), input_macs


@functools.lru_cache(maxsize=64)
def _count(
    arch: str,
    config_json: str,
    signatures: tuple[str, ...],
    convention: str,
    adapter: ModelAdapter,
    height: int,
    width: int,
    counted: str,
    frames: int = 1,
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
        arch,
        convention,
        height,
        width,
        int(sample.shape[0]),
        text_len,
        layout.block_names,
        layout.component_names,
        layout.exists,
        component_macs,
        outside,
        layout.feeds,
        input_macs,
        counted,
        len(signatures),
        frames,
    )


def architecture_of(
    transformer: nn.Module, adapter: ModelAdapter | None = None
) -> tuple[dict[str, Any], str, ModelAdapter]:
    """``(config, arch, adapter)`` of a transformer: what counting rebuilds it from, without its weights."""
    model = unwrap_module(transformer)
    return {**model.config, "_class_name": type(model).__name__}, type(model).__name__, get_adapter(model, adapter)


def _config_json(config: Any) -> str:
    return json.dumps(dict(config), sort_keys=True, default=str)


def count_calls(
    transformer: nn.Module,
    calls: Sequence[TransformerCall],
    height: int,
    width: int,
    *,
    convention: str = "full",
    adapter: ModelAdapter | None = None,
    arch: str | None = None,
    counted: str = COUNTED["full"],
) -> CostTable:
    """The cost table of one denoising step made of ``calls`` (observed with :func:`ecad.cost.observe.observe_calls`),
    counted on a weightless copy of ``transformer``'s architecture."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown MAC convention {convention!r}; use one of {CONVENTIONS}.")
    config, own_arch, adapter = architecture_of(transformer, adapter)
    return _count(
        arch or own_arch,
        _config_json(config),
        tuple(c.signature() for c in calls),
        convention,
        adapter,
        height,
        width,
        counted,
    )


def count_pipeline_macs(
    pipe: Any,
    height: int,
    width: int,
    *,
    convention: str = "full",
    guidance_scale: float | None = None,
    images: int = 1,
    arch: str | None = None,
    adapter: ModelAdapter | None = None,
    **call_kwargs: Any,
) -> CostTable:
    """MACs of one denoising step of ``pipe`` generating ``images`` images at ``height`` x ``width``: the transformer
    calls a real call of the pipeline makes (``guidance_scale=None``: the pipeline's default) are observed and
    counted. The paper's convention counts the paper's fixed inputs instead (as for a preset)."""
    if convention == "paper":
        return count_architecture(*architecture_of(pipe.transformer, adapter), height, width, convention="paper")
    calls = observe_calls(pipe, probe_call(pipe, height, width, guidance_scale, images, adapter, **call_kwargs))
    return count_calls(
        pipe.transformer, calls, height, width, convention=convention, adapter=adapter, arch=arch or type(pipe).__name__
    )


def _assumed_signature(
    adapter: ModelAdapter,
    config: dict[str, Any],
    batch_size: int,
    height: int,
    width: int,
    text_len: int,
    frames: int | None,
) -> str:
    video = {} if adapter.default_frames is None else {"frames": frames}
    return TransformerCall(
        (), adapter.dummy_inputs(config, batch_size, height, width, text_len, "meta", **video)
    ).signature()


def count_architecture(
    config: dict[str, Any],
    arch: str,
    adapter: ModelAdapter,
    height: int,
    width: int,
    *,
    convention: str = "full",
    preset: ArchPreset | None = None,
    batch_size: int | None = None,
    text_len: int | None = None,
    frames: int | None = None,
) -> CostTable:
    """The cost table of one denoising step of the architecture ``config`` describes, at inputs assumed from it (or
    documented by ``preset``) rather than observed: the ``batch_size``, ``text_len`` and ``frames`` of
    :func:`ecad.models.macs.count_macs`."""
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
        raise ValueError(
            f"{arch} needs height and width that are positive multiples of {multiple}, got {height}x{width}."
        )
    signature = _assumed_signature(adapter, config, batch_size, height, width, text_len, frames)
    counted = COUNTED["paper" if convention == "paper" else ("full" if preset is not None else "assumed")]
    if preset is not None and convention != "paper":
        video = f"{frames} frames, " if frames else ""
        counted = (
            "attention core included, dead recomputes and replayed components' inputs left out; the "
            f"preset's inputs: its VAE and patching, {video}{text_len} text tokens, batch {batch_size}"
        )
    return _count(arch, _config_json(config), (signature,), convention, adapter, height, width, counted, frames or 1)
