"""tiny-shapes: the project's embedded text-to-image DiT and its reward model, trained from scratch.

A real PixArtAlphaPipeline (64x64 images, 16x16x4 latents, 64 image tokens) that runs anywhere in
about a second per image, so schedule search has a model whose outputs caching can actually hurt::

    pipe = ecad.tiny_shapes.load_pipeline()          # a TinyShapesPipeline: its call defaults are the model's
    image = pipe("a small red circle above a large blue square").images[0]

The plain ``PixArtAlphaPipeline.from_pretrained(PIPELINE_DIR)`` loads the same weights; call it with
``**PIPELINE_KWARGS`` and ``guidance_scale=GUIDANCE_SCALE``: PixArt's default resolution binning only knows its
256-1024 px models and fails on this 64 px one with ``ValueError: Invalid sample size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import PixArtAlphaPipeline

from ...adapters import register_model_source
from ...names import TINY_SHAPES
from ..pretrained import from_pretrained
from .build import IMAGE_SIZE, MAX_SEQUENCE_LENGTH
from .reward import RewardModel, shape_fid

NAME = TINY_SHAPES
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PIPELINE_DIR = WEIGHTS_DIR / "pipeline"
REWARD_DIR = WEIGHTS_DIR / "reward"
register_model_source(NAME, str(PIPELINE_DIR))
GUIDANCE_SCALE = 3.0  # the model's best: chosen on training captions (docs/tiny_shapes.md); 4.5 costs ~6 points
PIPELINE_KWARGS: dict = {
    "height": IMAGE_SIZE,
    "width": IMAGE_SIZE,
    "use_resolution_binning": False,
    "max_sequence_length": MAX_SEQUENCE_LENGTH,
    "clean_caption": False,
}


class TinyShapesPipeline(PixArtAlphaPipeline):
    """``PixArtAlphaPipeline`` whose call defaults are tiny-shapes': 64x64 px, no resolution binning, 16 text
    tokens, no caption cleaning, guidance 3. Every argument can still be given."""

    def __call__(
        self,
        prompt: Any = None,
        *args: Any,
        guidance_scale: float = GUIDANCE_SCALE,
        height: int = IMAGE_SIZE,
        width: int = IMAGE_SIZE,
        use_resolution_binning: bool = False,
        max_sequence_length: int = MAX_SEQUENCE_LENGTH,
        clean_caption: bool = False,
        **kwargs: Any,
    ) -> Any:
        return super().__call__(
            prompt,
            *args,
            guidance_scale=guidance_scale,
            height=height,
            width=width,
            use_resolution_binning=use_resolution_binning,
            max_sequence_length=max_sequence_length,
            clean_caption=clean_caption,
            **kwargs,
        )


def load_pipeline(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, path: str | Path = PIPELINE_DIR
) -> TinyShapesPipeline:
    """Load the embedded tiny-shapes text-to-image model: no download, works offline, prints nothing.

    Args:
        device: where to put the pipeline.
        dtype: weights and compute dtype.
        path: another tiny-shapes pipeline folder (default: the one shipped in the package).

    Returns:
        A ``TinyShapesPipeline`` (a ``PixArtAlphaPipeline`` whose call defaults are this model's: 64x64 px,
        20 steps, guidance 3, 16 text tokens), loaded through the ordinary ``from_pretrained(local_dir)``.

    Example:
        ```python
        pipe = ecad.tiny_shapes.load_pipeline()
        image = pipe("a small red circle above a large blue square").images[0]
        ```
    """
    return from_pretrained(TinyShapesPipeline, path, dtype).to(device)


def load_reward_model(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> RewardModel:
    """Load the embedded reward model behind the ``tiny-reward`` and ``shape-fid`` metrics.

    Args:
        device: where to put the model.
        dtype: weights and compute dtype.

    Returns:
        A ``RewardModel``: ``score(images, captions)`` is the probability that each image shows its caption.
    """
    return RewardModel.load(REWARD_DIR).to(device, dtype)


__all__ = [
    "GUIDANCE_SCALE",
    "IMAGE_SIZE",
    "MAX_SEQUENCE_LENGTH",
    "NAME",
    "PIPELINE_DIR",
    "PIPELINE_KWARGS",
    "REWARD_DIR",
    "RewardModel",
    "TinyShapesPipeline",
    "load_pipeline",
    "load_reward_model",
    "shape_fid",
]
