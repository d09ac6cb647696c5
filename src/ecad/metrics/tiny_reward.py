"""``tiny-reward`` and ``shape-fid``: the tiny-shapes reward model as a search metric (reference-free, like
ImageReward) and its features as a FID-style distance."""

from __future__ import annotations

from typing import Any

import torch

from ..generation import Generated
from .base import QualityMetric


def _reward_model(model: Any | None, device: str | None) -> Any:
    if model is not None:
        return model
    from ..tiny_shapes import load_reward_model

    return load_reward_model(device=device or "cpu")


class TinyRewardMetric(QualityMetric):
    """Quality = mean probability that an image shows its caption; ``match_rate`` = share judged a match (> 0.5).

    Only for tiny-shapes captions ("a small red circle above a large blue square").
    """

    name = "tiny-reward"

    def __init__(self, model: Any | None = None, device: str | None = None) -> None:
        self.model = _reward_model(model, device)

    def __call__(self, generated: Generated) -> dict[str, float]:
        scores = self.model.score(generated.images, list(generated.prompts))
        return {"quality": scores.mean().item(), "tiny_reward": scores.mean().item(),
                "match_rate": (scores > 0.5).float().mean().item()}


class ShapeFidMetric(QualityMetric):
    """Quality = -shape-FID to the uncached images of the same rows (lower distance is better)."""

    name = "shape-fid"
    needs_reference = True

    def __init__(self, model: Any | None = None, device: str | None = None) -> None:
        self.model = _reward_model(model, device)
        self.reference: torch.Tensor | None = None

    def prepare(self, reference: Generated) -> None:
        self.reference = reference.images

    def __call__(self, generated: Generated) -> dict[str, float]:
        from ..tiny_shapes import shape_fid

        if self.reference is None:
            raise RuntimeError("shape-fid needs the uncached reference images: call prepare() first.")
        distance = shape_fid(self.model, generated.images, self.reference)
        return {"quality": -distance, "shape_fid": distance}
