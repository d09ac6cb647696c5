"""tiny-shapes: the project's embedded text-to-image DiT and its reward model, trained from scratch.

A real PixArtAlphaPipeline (64x64 images, 16x16x4 latents, 64 image tokens) that runs anywhere in
about a second per image, so schedule search has a model whose outputs caching can actually hurt.
Call the pipeline with ``height=64, width=64, use_resolution_binning=False,
max_sequence_length=MAX_SEQUENCE_LENGTH`` (see :data:`PIPELINE_KWARGS`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import PixArtAlphaPipeline

from .build import IMAGE_SIZE, MAX_SEQUENCE_LENGTH
from .reward import RewardModel, shape_fid

NAME = "tiny-shapes"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PIPELINE_DIR = WEIGHTS_DIR / "pipeline"
REWARD_DIR = WEIGHTS_DIR / "reward"
GUIDANCE_SCALE = 3.0  # the model's best: chosen on training captions (docs/tiny_shapes.md); 4.5 costs ~6 points
PIPELINE_KWARGS: dict = {
    "height": IMAGE_SIZE, "width": IMAGE_SIZE, "use_resolution_binning": False,
    "max_sequence_length": MAX_SEQUENCE_LENGTH, "clean_caption": False,
}


def load_pipeline(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, path: str | Path = PIPELINE_DIR
) -> PixArtAlphaPipeline:
    """The shipped pipeline (or another tiny-shapes folder at ``path``) through the ordinary
    ``from_pretrained(local_dir)`` path; works offline."""
    pipe = PixArtAlphaPipeline.from_pretrained(path).to(device=device, dtype=dtype)  # dtype kwarg name varies across diffusers
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_reward_model(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> RewardModel:
    return RewardModel.load(REWARD_DIR).to(device, dtype)


__all__ = [
    "GUIDANCE_SCALE", "IMAGE_SIZE", "MAX_SEQUENCE_LENGTH", "NAME", "PIPELINE_DIR", "PIPELINE_KWARGS", "REWARD_DIR",
    "RewardModel",
    "load_pipeline", "load_reward_model", "shape_fid",
]
