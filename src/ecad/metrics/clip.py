"""``clip``: CLIP score of image and prompt, with transformers' ``CLIPModel`` (weights from the hub on first use).

Computed here rather than with torchmetrics' ``CLIPScore``: torchmetrics 1.9 expects ``get_image_features`` to
return a tensor, which transformers 5 no longer does. The definition is the same: 100 x cosine similarity of the
projected image and text embeddings, floored at 0, averaged over the images. :class:`ClipScorer` is also the base
of PickScore (a fine-tuned CLIP-H that differs only in its weights and in how the cosine becomes a score).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from .base import BATCH_SIZE, PromptImageMetric
from .weights import from_hub

MAX_TEXT_TOKENS = 77  # CLIP's text positions: longer prompts are truncated, as every CLIP score does


def _projected(output: Any) -> torch.Tensor:
    """transformers 4 returns the projected features, transformers 5 an output whose pooler_output holds them."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipScorer(PromptImageMetric):
    """A hub CLIP model and processor scoring each image against its prompt from the cosine of their embeddings.

    ``model`` / ``processor``: hub ids or local folders (``processor`` defaults to the model's own).
    """

    default_model: ClassVar[str] = ""
    default_processor: ClassVar[str | None] = None

    def __init__(
        self,
        model: str | None = None,
        processor: str | None = None,
        device: str | None = None,
        batch_size: int = BATCH_SIZE,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
    ) -> None:
        super().__init__(device, batch_size, cache_dir, local_files_only)
        self.model_name = model or self.default_model
        self.processor_name = processor or (self.default_processor if model is None else None) or self.model_name
        self.processor: Any = None

    def _load(self) -> None:
        import transformers
        from transformers import AutoProcessor, CLIPModel

        # The PIL image processor, the one these scores were defined with (transformers 5 would otherwise pick its
        # torchvision backend where torchvision is installed, which resizes slightly differently).
        backend = {"backend": "pil"} if int(transformers.__version__.split(".")[0]) >= 5 else {}
        model = from_hub(self.model_name, lambda: CLIPModel.from_pretrained(self.model_name, **self.hub))
        self.processor = from_hub(
            self.processor_name, lambda: AutoProcessor.from_pretrained(self.processor_name, **self.hub, **backend)
        )
        self.model = model.to(self.device).eval()

    def from_cosine(self, cosine: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        inputs = self.processor(
            text=prompts, images=images, return_tensors="pt", padding=True, truncation=True, max_length=MAX_TEXT_TOKENS
        ).to(self.device)
        image = _projected(self.model.get_image_features(pixel_values=inputs["pixel_values"]))
        text = _projected(
            self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        )
        return self.from_cosine(torch.nn.functional.cosine_similarity(image, text, dim=-1))


class ClipMetric(ClipScorer):
    """Quality = mean CLIP score (100 x cosine, floored at 0) with OpenAI's CLIP ViT-L/14."""

    name = "clip"
    default_model = "openai/clip-vit-large-patch14"
    score_name = "clip_score"

    def from_cosine(self, cosine: torch.Tensor) -> torch.Tensor:
        return (100 * cosine).clamp(min=0)
