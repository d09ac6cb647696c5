"""``clip``: CLIP score of image and prompt through torchmetrics (optional weights from the hub)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..generation import Generated
from .base import QualityMetric


class ClipMetric(QualityMetric):
    """Quality = mean CLIP score (100 x cosine similarity, floored at 0), as torchmetrics' ``CLIPScore``.

    ``model`` is a hub id (``openai/clip-vit-large-patch14`` by default) or a callable returning
    ``(CLIPModel, CLIPProcessor)``.
    """

    name = "clip"

    def __init__(self, model: str | Callable[[], tuple[Any, Any]] = "openai/clip-vit-large-patch14") -> None:
        self.model = model
        self.scorer = None

    def __call__(self, generated: Generated) -> dict[str, float]:
        from torchmetrics.multimodal.clip_score import CLIPScore

        if self.scorer is None:
            self.scorer = CLIPScore(model_name_or_path=self.model)
        images = (generated.images.clamp(0, 1) * 255).round().to(torch.uint8)
        score = float(self.scorer(images, list(generated.prompts)))
        self.scorer.reset()
        return {"quality": score, "clip_score": score}
