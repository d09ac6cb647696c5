"""``image-reward``: ImageReward-v1.0, the reward model the ECAD paper searched with (optional extra)."""

from __future__ import annotations

from typing import Any

import torch

from ..generation import Generated
from .base import QualityMetric
from .images import to_pil


class ImageRewardMetric(QualityMetric):
    """Quality = mean ImageReward over the images; ``scorer`` is anything with ``score(prompt, [PIL images])``."""

    name = "image-reward"

    def __init__(self, scorer: Any | None = None, model: str = "ImageReward-v1.0", device: str | None = None) -> None:
        self.scorer = scorer
        self.model = model
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    def _load(self) -> Any:
        try:
            import ImageReward
        except ImportError:
            raise ImportError(
                "the image-reward metric needs the `image-reward` package: pip install 'ecad[image-reward]'"
            ) from None
        return ImageReward.load(self.model, device=self.device)

    def __call__(self, generated: Generated) -> dict[str, float]:
        if self.scorer is None:
            self.scorer = self._load()
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(generated.prompts):
            groups.setdefault(prompt, []).append(i)
        scores: list[float] = []
        for prompt, rows in groups.items():
            result = self.scorer.score(prompt, [to_pil(generated.images[i]) for i in rows])
            scores += [float(v) for v in (result if isinstance(result, (list, tuple)) else [result])]
        mean = sum(scores) / len(scores)
        return {"quality": mean, "image_reward": mean}
