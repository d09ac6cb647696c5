"""``pickscore``: PickScore v1 (Kirstain et al., 2023), CLIP-H fine-tuned on Pick-a-Pic human preferences.

As its authors compute it: ``yuvalkirstain/PickScore_v1`` through transformers' ``CLIPModel``, inputs from the
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` processor, score = exp(logit_scale) x cosine of the normalised image and
text embeddings.
"""

from __future__ import annotations

import torch

from .clip import ClipScorer


class PickScoreMetric(ClipScorer):
    """Quality = mean PickScore of the images against their prompts (3.9 GB of weights on first use)."""

    name = "pickscore"
    default_model = "yuvalkirstain/PickScore_v1"
    default_processor = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    score_name = "pickscore"

    def from_cosine(self, cosine: torch.Tensor) -> torch.Tensor:
        return self.model.logit_scale.exp() * cosine
