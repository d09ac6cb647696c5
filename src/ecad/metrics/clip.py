"""``clip``: CLIP score of image and prompt (optional weights from the hub).

Computed here with transformers' ``CLIPModel`` rather than torchmetrics' ``CLIPScore``: torchmetrics 1.9 expects
``get_image_features`` to return a tensor, which transformers 5 no longer does. The definition is the same:
100 x cosine similarity of the projected image and text embeddings, floored at 0, averaged over the images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..generation import Generated
from .base import QualityMetric
from .images import to_pil


def _projected(output: Any) -> torch.Tensor:
    """transformers 4 returns the projected features, transformers 5 an output whose pooler_output holds them."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipMetric(QualityMetric):
    """Quality = mean CLIP score. ``model``: a hub id or folder, or a callable returning (CLIPModel, CLIPProcessor)."""

    name = "clip"

    def __init__(self, model: str | Callable[[], tuple[Any, Any]] = "openai/clip-vit-large-patch14",
                 device: str | None = None) -> None:
        self.source = model
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model: Any = None
        self.processor: Any = None

    def _load(self) -> None:
        if callable(self.source):
            self.model, self.processor = self.source()
        else:
            from transformers import CLIPModel, CLIPProcessor

            self.model = CLIPModel.from_pretrained(self.source)
            self.processor = CLIPProcessor.from_pretrained(self.source)
        self.model = self.model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, generated: Generated) -> dict[str, float]:
        if self.model is None:
            self._load()
        inputs = self.processor(text=list(generated.prompts), images=[to_pil(im) for im in generated.images],
                                return_tensors="pt", padding=True).to(self.device)
        image = _projected(self.model.get_image_features(pixel_values=inputs["pixel_values"]))
        text = _projected(self.model.get_text_features(input_ids=inputs["input_ids"],
                                                       attention_mask=inputs["attention_mask"]))
        cosine = torch.nn.functional.cosine_similarity(image, text, dim=-1)
        score = (100 * cosine).clamp(min=0).mean().item()
        return {"quality": score, "clip_score": score}
