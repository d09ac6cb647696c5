"""MACs of a model however it is given: a pipeline, a transformer, or by name (a pipeline or transformer folder, a
hub id, an architecture preset, ``tiny-shapes``), reading its config where it is named. The counting itself is
:mod:`ecad.cost.counting`."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..adapters import ModelAdapter, UnsupportedModelError, adapter_for_config, find_preset, presets
from ..cost.counting import architecture_of, count_architecture, count_pipeline_macs
from ..cost.table import CostTable
from ..names import CONVENTIONS
from .loading import local_folder, pipeline_without_weights, read_transformer_config


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

            - a pipeline (``pipe``): one real call of it is observed (:func:`ecad.cost.counting.count_pipeline_macs`);
            - a pipeline folder, hub id or ``"tiny-shapes"``: the pipeline is built from its configs without weights
              (:func:`ecad.models.loading.pipeline_without_weights`) and its call observed the same way;
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
            raise ValueError(
                "batch_size and text_len are observed from the pipeline call; give images= and "
                "guidance_scale= instead (or count a preset or a transformer)."
            )
        if isinstance(model, str):
            return count_pipeline_macs(
                pipeline_without_weights(model),
                height,
                width,
                guidance_scale=guidance_scale,
                images=images,
                arch=model,
                adapter=adapter,
            )
        return count_pipeline_macs(model, height, width, guidance_scale=guidance_scale, images=images, adapter=adapter)
    preset = None
    if not isinstance(model, (str, nn.Module)):
        model = model.transformer
    if isinstance(model, nn.Module):
        config, arch, adapter = architecture_of(model, adapter)
    elif model in presets():
        adapter, preset = find_preset(model)
        config, arch = preset.config, model
    else:
        config, arch = read_transformer_config(str(model)), str(model)
        adapter = adapter or adapter_for_config(config)
        if adapter is None:
            raise UnsupportedModelError(f"ecad has no adapter for transformer class {config.get('_class_name')!r}.")
    return count_architecture(
        config,
        arch,
        adapter,
        height,
        width,
        convention=convention,
        preset=preset,
        batch_size=batch_size,
        text_len=text_len,
        frames=frames,
    )
