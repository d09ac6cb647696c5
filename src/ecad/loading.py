"""Loading pipelines by name, folder or hub id, with errors a user can act on."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from .adapters import ADAPTERS, UnsupportedModelError, get_adapter
from .validation import device as check_device

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device to run on, refused with the fix when it does not exist here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(check_device(device))
    except ValueError as err:
        raise ValueError(f"device {err}.") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: torch sees no CUDA GPU on this machine "
                             "(torch.cuda.is_available() is False); use --device cpu or auto.")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"numbered from 0; use cuda:0..cuda:{torch.cuda.device_count() - 1}.")
    elif parsed.type != "cpu" and not getattr(getattr(torch, parsed.type, None), "is_available", lambda: False)():
        raise ValueError(f"device {device!r}: torch has no {parsed.type} device on this machine; "
                         "use --device cpu or auto.")
    return parsed


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

    target = resolve_device(device)
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
    return pipe.to(target)


def _config_on_disk(model: str) -> dict[str, Any] | None:
    """The transformer config of a model name when it is on disk (a folder, tiny-shapes or a preset), else None."""
    for adapter in ADAPTERS:
        if model in adapter.presets:
            return adapter.presets[model].config
    path = Path(model_source(model)).expanduser() / "transformer" / "config.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None  # loading the model reports it


def check_image_size(model: Any, height: int | None, width: int | None) -> None:
    """Refuse a height or width the model cannot generate, before it loads: ``model`` is a name (checked when its
    config is on disk; a hub id is checked once loaded) or a loaded pipeline."""
    if isinstance(model, str):
        config = _config_on_disk(model) or {}
        adapter = next((a for a in ADAPTERS if config.get("_class_name") in a.transformer_classes), None)
        label = model
    else:
        config, adapter, label = dict(model.transformer.config), get_adapter(model.transformer), "the model"
    if adapter is None:
        return
    multiple = adapter.pixel_multiple(config)
    for name, value in (("height", height), ("width", width)):
        if value is not None and value % multiple:
            lower = value - value % multiple
            raise ValueError(f"{name} {value} is not a multiple of {multiple}, which {label} needs (VAE factor x "
                             f"patch size); use {lower or multiple} or {lower + multiple}.")


def pipeline_call_kwargs(pipe: Any) -> dict[str, Any]:
    """Extra keyword arguments the model family needs to generate exactly the requested size."""
    return dict(get_adapter(pipe.transformer).call_kwargs)


def default_size(pipe: Any) -> int:
    """The pipeline's own default image size in pixels (FLUX's transformer config has no sample_size; its pipeline
    and SD3's say their default latent size)."""
    latent = getattr(pipe, "default_sample_size", None) or pipe.transformer.config.sample_size
    return int(latent * pipe.vae_scale_factor)
