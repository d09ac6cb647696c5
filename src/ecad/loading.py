"""Loading pipelines by name, folder or hub id, with errors a user can act on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .adapters import ADAPTERS, UnsupportedModelError, get_adapter

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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
    if model == "tiny-shapes":
        from .tiny_shapes import PIPELINE_DIR

        return str(PIPELINE_DIR)
    for adapter in ADAPTERS:
        preset = adapter.presets.get(model)
        if preset is not None and preset.hub_id:
            return preset.hub_id
    return model


def load_pipeline(model: str, device: str = "auto", dtype: str | torch.dtype = "float32") -> Any:
    """``DiffusionPipeline.from_pretrained`` of a folder, hub id or preset name, checked to be supported by ecad."""
    from diffusers import DiffusionPipeline

    source = model_source(model)
    looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
    if looks_local and not Path(source).expanduser().is_dir():
        raise FileNotFoundError(f"model folder not found: {source}")
    logger.info("loading pipeline %s", source)
    try:
        pipe = DiffusionPipeline.from_pretrained(str(Path(source).expanduser()) if looks_local else source,
                                                 torch_dtype=resolve_dtype(dtype))
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"cannot load model {model!r}: {str(err).splitlines()[0]}") from None
    transformer = getattr(pipe, "transformer", None)
    if transformer is None:
        raise UnsupportedModelError(f"{model!r} is a {type(pipe).__name__} without a `transformer`; ecad caches DiTs.")
    get_adapter(transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(resolve_device(device))


def pipeline_call_kwargs(pipe: Any) -> dict[str, Any]:
    """Extra keyword arguments the model family needs to generate exactly the requested size."""
    return dict(get_adapter(pipe.transformer).call_kwargs)


def default_size(pipe: Any) -> int:
    """The pipeline's own default image size in pixels (FLUX's transformer config has no sample_size; its pipeline
    and SD3's say their default latent size)."""
    latent = getattr(pipe, "default_sample_size", None) or pipe.transformer.config.sample_size
    return int(latent * pipe.vae_scale_factor)
