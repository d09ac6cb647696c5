"""Loading pipelines by name, folder or hub id, with errors a user can act on and no third-party chatter."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .adapters import ADAPTERS, UnsupportedModelError, get_adapter
from .names import DTYPE_NAMES, TINY_SHAPES

logger = logging.getLogger(__name__)

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def model_source(model: str) -> str:
    """Map ``tiny-shapes`` to the embedded model's folder and a preset name to its hub id; folders and hub ids
    pass through."""
    if model == TINY_SHAPES:
        from .tiny_shapes import PIPELINE_DIR

        return str(PIPELINE_DIR)
    for adapter in ADAPTERS:
        preset = adapter.presets.get(model)
        if preset is not None and preset.hub_id:
            return preset.hub_id
    return model


def _dtype_keyword() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (the old name warns); older releases know only the old one."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


@contextmanager
def _loading_bars_off() -> Iterator[None]:
    """diffusers' "Loading pipeline components" and transformers' "Loading weights" bars, off while loading."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    states = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in states:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in states:
            if enabled:
                lib.enable_progress_bar()


def from_pretrained(cls: Any, source: str | Path, dtype: str | torch.dtype = "float32") -> Any:
    """``cls.from_pretrained(source)`` that prints nothing of its own: the dtype under its current keyword, the
    low-memory path only where accelerate is installed (diffusers otherwise warns that it is missing), no loading
    bars (ecad logs the load and its time instead)."""
    start = time.perf_counter()
    kwargs = {_dtype_keyword(): resolve_dtype(dtype),
              "low_cpu_mem_usage": importlib.util.find_spec("accelerate") is not None}
    with _loading_bars_off():
        pipe = cls.from_pretrained(source, **kwargs)
    logger.debug("loaded %s in %.1f s", source, time.perf_counter() - start)
    return pipe


@contextmanager
def progress_bar_off(pipe: Any) -> Iterator[None]:
    """The pipeline's own per-step bar off for ecad's loops (a search's thousands of calls, timed calls), which
    show their own progress; the pipeline's setting comes back afterwards."""
    saved = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(**{**saved, "disable": True})
    try:
        yield
    finally:
        pipe.set_progress_bar_config(**saved)


def load_pipeline(model: str, device: str = "auto", dtype: str | torch.dtype = "float32") -> Any:
    """``DiffusionPipeline.from_pretrained`` of a folder, hub id or preset name, checked to be supported by ecad.

    ``tiny-shapes`` gives :class:`ecad.tiny_shapes.TinyShapesPipeline` (the shipped model with its call defaults).
    """
    if model == TINY_SHAPES:
        from .tiny_shapes import load_pipeline as load_tiny_shapes

        logger.info("loading pipeline %s", model)
        return load_tiny_shapes(device=resolve_device(device), dtype=resolve_dtype(dtype))
    from diffusers import DiffusionPipeline

    source = model_source(model)
    looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
    if looks_local and not Path(source).expanduser().is_dir():
        raise FileNotFoundError(f"model folder not found: {source}")
    logger.info("loading pipeline %s", source)
    try:
        pipe = from_pretrained(DiffusionPipeline, str(Path(source).expanduser()) if looks_local else source, dtype)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"cannot load model {model!r}: {str(err).splitlines()[0]}") from None
    transformer = getattr(pipe, "transformer", None)
    if transformer is None:
        raise UnsupportedModelError(f"{model!r} is a {type(pipe).__name__} without a `transformer`; ecad caches DiTs.")
    get_adapter(transformer)
    return pipe.to(resolve_device(device))


def pipeline_call_kwargs(pipe: Any) -> dict[str, Any]:
    """Extra keyword arguments the model family needs to generate exactly the requested size."""
    return dict(get_adapter(pipe.transformer).call_kwargs)


def default_size(pipe: Any) -> int:
    """The pipeline's own default image size in pixels (FLUX's transformer config has no sample_size; its pipeline
    and SD3's say their default latent size)."""
    latent = getattr(pipe, "default_sample_size", None) or pipe.transformer.config.sample_size
    return int(latent * pipe.vae_scale_factor)


def call_default(pipe: Any, name: str) -> Any:
    """The default of one of the pipeline call's arguments (``guidance_scale``: PixArt 4.5, tiny-shapes 3), or None."""
    parameter = inspect.signature(type(pipe).__call__).parameters.get(name)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default
