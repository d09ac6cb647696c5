"""``tiny-reward`` and ``shape-fid``: the tiny-shapes reward model as a search metric (reference-free, like
ImageReward) and its features as a FID-style distance to real samples of the generator."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..generation import Generated
from .base import QualityMetric, RowMetric


def _reward_model(model: Any | None, device: str | None) -> Any:
    if model is not None:
        return model
    from ..models.tiny_shapes import load_reward_model

    return load_reward_model(device=device or "cpu")


class TinyRewardMetric(RowMetric):
    """Quality = mean probability that an image shows its caption; ``match_rate`` = share judged a match (> 0.5).

    Only for tiny-shapes captions ("a small red circle above a large blue square").
    """

    name = "tiny-reward"

    def __init__(self, model: Any | None = None, device: str | None = None) -> None:
        self.model = _reward_model(model, device)

    def rows(self, generated: Generated) -> dict[str, torch.Tensor]:
        scores = self.model.score(generated.images, list(generated.prompts))
        return {"quality": scores, "tiny_reward": scores, "match_rate": (scores > 0.5).float()}


class ShapeFidMetric(QualityMetric):
    """Quality = -shape-FID between the generated images and real generator renders of the same captions.

    The real set is rendered once per prompt list (seed = row index), so every candidate is compared with the same
    real samples; lower distance is better, hence the sign.
    """

    name = "shape-fid"

    def __init__(self, model: Any | None = None, device: str | None = None) -> None:
        self.model = _reward_model(model, device)
        self.real: tuple[list[str], torch.Tensor] | None = None

    def _real(self, prompts: list[str]) -> torch.Tensor:
        if self.real is None or self.real[0] != prompts:
            from ..models.tiny_shapes.scenes import layout, parse_caption, render_batch

            scenes = [layout(parse_caption(p), np.random.default_rng(i)) for i, p in enumerate(prompts)]
            self.real = (prompts, render_batch(scenes))
        return self.real[1]

    def __call__(self, generated: Generated) -> dict[str, float]:
        from ..models.tiny_shapes import shape_fid

        real = self._real(list(generated.prompts))
        distance = shape_fid(self.model, generated.images, real)
        return {"quality": -distance, "shape_fid": distance}
