"""The schedule layout of what a user passes: a diffusers pipeline, or its transformer (compiled or not)."""

from __future__ import annotations

from typing import Any

from diffusers.utils.torch_utils import unwrap_module
from torch import nn

from ..schedule import CacheSchedule
from . import get_adapter
from .base import ModelAdapter, ModelLayout


def split_target(target: Any) -> tuple[nn.Module, Any | None]:
    """``(transformer, scheduler or None)`` from a pipeline or a bare transformer; a ``torch.compile`` wrapper
    (``pipe.transformer = torch.compile(pipe.transformer)``) is unwrapped, since hooks live on the modules."""
    if isinstance(target, nn.Module):
        return unwrap_module(target), None
    transformer = getattr(target, "transformer", None)
    if not isinstance(transformer, nn.Module):
        raise TypeError(
            f"ecad caches diffusion transformers: pass a pipeline with a `transformer` or the transformer itself, "
            f"got {type(target).__name__}."
        )
    return unwrap_module(transformer), getattr(target, "scheduler", None)


def has_experts(pipe: Any) -> bool:
    """Whether ``pipe`` hands the trajectory from one transformer to another (Wan 2.2 A14B: a ``transformer_2`` and
    a ``boundary_ratio``)."""
    config = getattr(pipe, "config", {})
    return getattr(pipe, "transformer_2", None) is not None and config.get("boundary_ratio") is not None


def model_layout(target: Any, adapter: ModelAdapter | None = None) -> ModelLayout:
    """The schedule axes (block names, component names, exists mask) of a pipeline's or a bare transformer."""
    transformer, _ = split_target(target)
    return get_adapter(transformer, adapter).layout(transformer)


def full_schedule(target: Any, num_steps: int, adapter: ModelAdapter | None = None, **metadata: Any) -> CacheSchedule:
    """The no-caching schedule for this model and step count: the usual starting point."""
    return model_layout(target, adapter).full_schedule(num_steps, **metadata)
