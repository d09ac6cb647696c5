"""``image-reward``: ImageReward-v1.0, the reward model the ECAD paper searched with (ecad's port, no extra needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .base import BATCH_SIZE, PromptImageMetric
from .image_reward_model import MAX_TEXT_LENGTH, REPO, TOKENIZER, load_image_reward, preprocess


class ImageRewardMetric(PromptImageMetric):
    """Quality = mean ImageReward of the images, each against its own prompt.

    Loads the official checkpoint (``repo``: ``ImageReward.pt``, ``med_config.json``) and the ``tokenizer``
    (``bert-base-uncased``) through the hub cache on first use.
    """

    name = "image-reward"
    score_name = "image_reward"

    def __init__(
        self,
        repo: str = REPO,
        tokenizer: str = TOKENIZER,
        device: str | None = None,
        batch_size: int = BATCH_SIZE,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
    ) -> None:
        super().__init__(device, batch_size, cache_dir, local_files_only)
        self.repo, self.tokenizer_name = repo, tokenizer
        self.tokenizer: Any = None

    def _load(self) -> None:
        model, self.tokenizer = load_image_reward(self.repo, self.tokenizer_name, **self.hub)
        self.model = model.to(self.device)

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        text = self.tokenizer(
            prompts, padding="max_length", truncation=True, max_length=MAX_TEXT_LENGTH, return_tensors="pt"
        ).to(self.device)
        return self.model(preprocess(images).to(self.device), text.input_ids, text.attention_mask)
