"""Loading pipelines by name, folder or hub id, with errors a user can act on and no third-party chatter."""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import logging.handlers
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import torch

from .. import adapters
from ..adapters import UnsupportedModelError, adapter_for_config, get_adapter, presets
from ..names import TINY_SHAPES, did_you_mean
from ..validation import device as check_device
from .pretrained import from_pretrained, resolve_dtype

logger = logging.getLogger(__name__)


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
            raise ValueError(
                f"device {device!r}: torch sees no CUDA GPU on this machine "
                "(torch.cuda.is_available() is False); use --device cpu or auto."
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered from 0; use cuda:0..cuda:{torch.cuda.device_count() - 1}."
            )
    elif parsed.type != "cpu" and not getattr(getattr(torch, parsed.type, None), "is_available", lambda: False)():
        raise ValueError(
            f"device {device!r}: torch has no {parsed.type} device on this machine; use --device cpu or auto."
        )
    return parsed


def model_source(model: str) -> str:
    """:func:`ecad.adapters.model_source`, with the embedded model's folder registered first when ``model`` names
    it."""
    if model == TINY_SHAPES:
        from . import tiny_shapes  # noqa: F401  registers its folder; lazily: it loads diffusers' pipelines

    return adapters.model_source(model)


def local_folder(model: str) -> Path | None:
    """The local folder ``model`` names (``tiny-shapes`` included), ``None`` for a hub id; else a clear error."""
    path = Path(model_source(model)).expanduser()
    if path.exists():
        return path
    if model.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder not found: {model}")
    if model.count("/") != 1:
        raise UnsupportedModelError(
            f"{model!r} is neither an architecture preset ({', '.join(sorted(presets()))}), a model folder, "
            "nor a hub id of the form 'org/name'."
        )
    return None


def read_transformer_config(path_or_hub_id: str) -> dict[str, Any]:
    """The transformer config of a pipeline folder, a transformer folder, or a hub id (downloads only the config)."""
    path = local_folder(path_or_hub_id)
    if path is not None:
        for candidate in (path / "transformer" / "config.json", path / "config.json"):
            if candidate.is_file():
                return json.loads(candidate.read_text())
        raise FileNotFoundError(
            f"{path} has no transformer/config.json or config.json; is it a diffusers model folder?"
        )
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(path_or_hub_id, "config.json", subfolder="transformer")).read_text())
    except Exception as err:  # the hub client raises many types; all mean "could not get the config"
        raise FileNotFoundError(
            f"cannot read the transformer config of {path_or_hub_id!r}: {str(err).splitlines()[0]}"
        ) from None


@contextmanager
def progress_bar_set(pipe: Any, **config: Any) -> Iterator[None]:
    """The pipeline's own per-step bar with ``config`` (tqdm's arguments) changed; its setting comes back afterwards."""
    saved = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(**{**saved, **config})
    try:
        yield
    finally:
        pipe.set_progress_bar_config(**saved)


def progress_bar_off(pipe: Any) -> AbstractContextManager[None]:
    """The pipeline's own per-step bar off for ecad's loops (a search's thousands of calls, timed calls), which
    show their own progress."""
    return progress_bar_set(pipe, disable=True)


MODEL_FIX = (
    "give a folder saved with save_pretrained (it holds model_index.json), a hub id, a preset name or tiny-shapes"
)


def _not_loaded(model: str, err: Exception) -> str:
    """One line for a model diffusers did not load. When the hub could not be asked (offline, unreachable, no such
    repository), diffusers' message points at "the stacktrace above", which ecad does not print: say what to do."""
    if err.__cause__ is None:
        return f"cannot load model {model!r}: {str(err).splitlines()[0]}"
    known = [TINY_SHAPES, *presets(), *(p.hub_id for _, p in presets().values() if p.hub_id)]
    return (
        f"cannot load model {model!r}{did_you_mean(model, known)}: not a folder here nor in the hub cache, and "
        f"the hub did not give it ({str(err.__cause__).splitlines()[0].rstrip('.')}); check the name, or download "
        "the model once with network access (`hf download ID`)."
    )


@contextmanager
def _logs_held_unless_loaded() -> Iterator[None]:
    """diffusers' log records while a pipeline loads, shown once it has loaded: a failed load is one error line, and
    diffusers' "Couldn't connect to the Hub ... Will try to load from local cache" before it is noise."""
    root = logging.getLogger("diffusers")
    handlers, held = root.handlers[:], logging.handlers.BufferingHandler(capacity=10**6)
    root.handlers = [held]
    try:
        yield
    finally:
        root.handlers = handlers
    for record in held.buffer:  # loaded: as diffusers would have shown them
        root.handle(record)


def load_pipeline(model: str, device: str = "auto", dtype: str | torch.dtype = "float32") -> Any:
    """``DiffusionPipeline.from_pretrained`` of a folder, hub id or preset name, checked to be supported by ecad.

    ``tiny-shapes`` gives :class:`ecad.models.tiny_shapes.TinyShapesPipeline` (the shipped model with its call
    defaults).
    """
    if model == TINY_SHAPES:
        from .tiny_shapes import load_pipeline as load_tiny_shapes  # see model_source

        logger.info("loading pipeline %s", model)
        return load_tiny_shapes(device=resolve_device(device), dtype=resolve_dtype(dtype))
    from diffusers import DiffusionPipeline

    target = resolve_device(device)
    source = model_source(model)
    looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
    if looks_local and not Path(source).expanduser().is_dir():
        raise FileNotFoundError(f"model folder not found: {source}; {MODEL_FIX}.")
    logger.info("loading pipeline %s", source)
    try:
        with _logs_held_unless_loaded():
            pipe = from_pretrained(DiffusionPipeline, str(Path(source).expanduser()) if looks_local else source, dtype)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(_not_loaded(model, err)) from None
    transformer = getattr(pipe, "transformer", None)
    if transformer is None:
        raise UnsupportedModelError(f"{model!r} is a {type(pipe).__name__} without a `transformer`; ecad caches DiTs.")
    get_adapter(transformer)
    return pipe.to(target)


def _config_on_disk(model: str) -> dict[str, Any] | None:
    """The transformer config of a model name when it is on disk (a folder, tiny-shapes or a preset), else None."""
    if model in presets():
        return presets()[model][1].config
    try:
        path = local_folder(model)
        return read_transformer_config(str(path)) if path is not None else None
    except (OSError, ValueError):
        return None  # loading the model reports it


def check_image_size(model: Any, height: int | None, width: int | None) -> None:
    """Refuse a height or width the model cannot generate, before it loads: ``model`` is a name (checked when its
    config is on disk; a hub id is checked once loaded) or a loaded pipeline."""
    if isinstance(model, str):
        config = _config_on_disk(model) or {}
        adapter = adapter_for_config(config)
        label = model
    else:
        config, adapter, label = dict(model.transformer.config), get_adapter(model.transformer), "the model"
    if adapter is None:
        return
    multiple = adapter.pixel_multiple(config)
    for name, value in (("height", height), ("width", width)):
        if value is not None and value % multiple:
            lower = value - value % multiple
            raise ValueError(
                f"{name} {value} is not a multiple of {multiple}, which {label} needs (VAE factor x "
                f"patch size); use {lower or multiple} or {lower + multiple}."
            )


def pipeline_call_kwargs(pipe: Any) -> dict[str, Any]:
    """Extra keyword arguments the model family needs to generate exactly the requested size, at the text length
    ecad encodes prompts to (PixArt: the tokenizer's own limit if it is below the pipeline's 120/300)."""
    return get_adapter(pipe.transformer).pipeline_kwargs(pipe)


def default_size(pipe: Any) -> int:
    """The pipeline's own default image size in pixels (FLUX's transformer config has no sample_size; its pipeline
    and SD3's say their default latent size)."""
    latent = getattr(pipe, "default_sample_size", None) or pipe.transformer.config.sample_size
    return int(latent * pipe.vae_scale_factor)


# What a pipeline without weights needs from a hub repository: the configs, the tokenizers, the scheduler.
_CONFIG_PATTERNS = ["model_index.json", "*/config.json", "*/*config*.json", "tokenizer*/*", "scheduler/*"]


def _config_folder(model: str) -> Path:
    """A local folder with the pipeline's ``model_index.json``: the folder given, or a config-only download."""
    source = model_source(model)
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"{path} has no model_index.json; is it a diffusers pipeline folder?")
        return path
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise FileNotFoundError(f"model folder not found: {source}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, allow_patterns=_CONFIG_PATTERNS))
    except Exception as err:  # the hub client raises many types; all mean "could not get the configs"
        raise FileNotFoundError(f"cannot read the pipeline configs of {model!r}: {str(err).splitlines()[0]}") from None


def _fake_forward(module: torch.nn.Module, mode: Any) -> None:
    """Make ``module`` compute in ``mode`` (shapes only), whoever calls it."""
    forward = module.forward

    def fake(*args: Any, **kwargs: Any) -> Any:
        with mode:
            return forward(*args, **kwargs)

    module.forward = fake


def pipeline_without_weights(model: str) -> Any:
    """A pipeline built from its configs alone: tokenizers and scheduler real, every model with fake weights.

    Its call runs the pipeline's own code on tensors that have shapes but no data (``FakeTensorMode``; text encoders
    of transformers support it), so :func:`ecad.cost.observe.observe_calls` sees exactly the shapes the real pipeline
    feeds its transformer, without downloading or allocating a single weight. For a hub id only the configs and
    tokenizer files are downloaded.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    folder = _config_folder(model)
    index = json.loads((folder / "model_index.json").read_text())
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    parts: dict[str, Any] = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2:
            continue
        library, class_name = spec
        if library is None or class_name is None:
            parts[name] = None
            continue
        cls = getattr(importlib.import_module(library), class_name)
        if not issubclass(cls, torch.nn.Module):
            parts[name] = cls.from_pretrained(folder, subfolder=name)
            continue
        with mode:
            if hasattr(cls, "from_config"):  # diffusers models
                module = cls.from_config(cls.load_config(folder, subfolder=name))
            else:  # transformers models
                from transformers import AutoConfig

                module = cls(AutoConfig.from_pretrained(folder, subfolder=name))
        _fake_forward(module.eval(), mode)
        parts[name] = module
    import diffusers

    pipe = getattr(diffusers, index["_class_name"])(**parts)
    get_adapter(pipe.transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call_default(pipe: Any, name: str) -> Any:
    """The default of one of the pipeline call's arguments (``guidance_scale``: PixArt 4.5, tiny-shapes 3), or None."""
    parameter = inspect.signature(type(pipe).__call__).parameters.get(name)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default
