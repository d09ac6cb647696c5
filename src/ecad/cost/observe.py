"""What a pipeline really feeds its transformer: the calls of one denoising step, observed during a real call.

Latent size (the VAE's scale factor, patching), text length (the tokenizer's padding, the pipeline's
``max_sequence_length``), classifier-free guidance (batched into one call, or true CFG's two calls per step) and any
extra inputs are whatever the pipeline's own code makes of the call's arguments: ecad does not guess them. A
forward pre-hook on the transformer records every call until the pipeline's first scheduler step, and the pipeline
is stopped there (one step of work at most). The cost model counts these calls (:mod:`ecad.cost.counting`), the latency
model times them (:mod:`ecad.cost.latency`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..adapters import get_adapter
from ..runtime.cache import active_cache

__all__ = ["TransformerCall", "observe_calls", "probe_call"]

PROBE_PROMPT = "a small red circle above a large blue square"


class _Observed(Exception):
    """Raised at the first scheduler step: everything the transformer gets in a step has been seen."""


def _spec(value: Any) -> Any:
    """A JSON-able description of an argument: tensors by shape and dtype, plain values as they are."""
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, dict):
        return {"dict": {str(k): _spec(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [_spec(v) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"ecad cannot describe a transformer argument of type {type(value).__name__}; the cost model "
        "counts calls whose arguments are tensors and plain values."
    )


def _meta(spec: Any) -> Any:
    """The argument back from its description, with tensors on the meta device (floating ones in float32, the
    dtype of the model the cost model builds there)."""
    if isinstance(spec, dict):
        if "tensor" in spec:
            dtype = getattr(torch, spec["dtype"])
            return torch.empty(spec["tensor"], dtype=torch.float32 if dtype.is_floating_point else dtype, device="meta")
        if "dict" in spec:
            return {k: _meta(v) for k, v in spec["dict"].items()}
        if "list" in spec:
            return [_meta(v) for v in spec["list"]]
        return tuple(_meta(v) for v in spec["tuple"])
    return spec


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value


@dataclass(frozen=True)
class TransformerCall:
    """The arguments of one observed transformer call (tensors detached copies; fake ones for a pipeline without
    weights), and their description."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TransformerCall:
        return cls(_detached(tuple(args)), _detached(dict(kwargs)))

    def signature(self) -> str:
        """Shapes, dtypes and plain values as one JSON string: equal for calls the cost model counts alike."""
        return json.dumps({"args": _spec(self.args), "kwargs": _spec(self.kwargs)}, sort_keys=True)

    @staticmethod
    def meta_arguments(signature: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` with meta tensors of the shapes a signature describes."""
        data = json.loads(signature)
        return _meta(data["args"]), _meta(data["kwargs"])

    def argument(self, name: str, position: int | None = None) -> Any:
        """A named argument, given by keyword or at ``position``."""
        if name in self.kwargs:
            return self.kwargs[name]
        return self.args[position] if position is not None and position < len(self.args) else None


def observe_calls(pipe: Any, call: Callable[[], Any]) -> list[TransformerCall]:
    """Make one pipeline call through ``call()`` and return the transformer calls of its first denoising step.

    The pipeline is stopped at its first ``scheduler.step``; an ecad cache enabled on it is reset afterwards (the
    stopped call leaves no half generation behind).
    """
    calls: list[TransformerCall] = []
    handle = pipe.transformer.register_forward_pre_hook(
        lambda _module, args, kwargs: calls.append(TransformerCall.of(args, kwargs)), with_kwargs=True
    )

    def stop(*_args: Any, **_kwargs: Any) -> None:
        raise _Observed

    pipe.scheduler.step = stop
    try:
        call()
    except _Observed:
        pass
    finally:
        handle.remove()
        del pipe.scheduler.step
        cache = active_cache(pipe)
        if cache is not None:
            cache.reset()
    if not calls:
        raise RuntimeError(
            f"{type(pipe).__name__} made no transformer call before its first scheduler step; ecad "
            "cannot observe what it feeds the transformer."
        )
    return calls


def probe_call(
    pipe: Any,
    height: int,
    width: int,
    guidance_scale: float | None = None,
    images: int = 1,
    adapter: Any = None,
    **call_kwargs: Any,
) -> Callable[[], Any]:
    """A pipeline call of ``images`` copies of a probe prompt at this size, with ecad's usual keyword arguments for
    the family (:meth:`ecad.adapters.ModelAdapter.pipeline_kwargs`); ``guidance_scale=None`` keeps the pipeline's
    default."""
    kwargs = {**get_adapter(pipe.transformer, adapter).pipeline_kwargs(pipe), **call_kwargs}
    if guidance_scale is not None:
        kwargs["guidance_scale"] = guidance_scale

    def call() -> Any:
        return pipe(
            [PROBE_PROMPT] * images, height=height, width=width, num_inference_steps=2, output_type="latent", **kwargs
        )

    return call
