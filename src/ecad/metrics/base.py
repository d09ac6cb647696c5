"""The quality-metric interface the search and evaluation use, and what the model-based metrics share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from ..generation import Generated
from .images import to_pil


class QualityMetric:
    """Scores a generated calibration set; higher ``quality`` is better.

    ``needs_reference`` metrics get the uncached generation of the same rows through :meth:`prepare` once per run.
    ``__call__`` returns ``{"quality": primary score, ...other numbers worth logging}``.
    """

    name: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False

    def prepare(self, reference: Generated) -> None:
        """Receive the uncached images of the calibration rows (only called when ``needs_reference``)."""

    def __call__(self, generated: Generated) -> dict[str, float]:
        raise NotImplementedError


class RowMetric(QualityMetric):
    """A metric whose numbers are means of one number per calibration row (image): a candidate can be scored on
    some rows first and compared with another row by row, on the same prompts and seeds (``--strategy race``).

    Subclasses implement :meth:`rows`; ``__call__`` is the mean of each.
    """

    def rows(self, generated: Generated) -> dict[str, torch.Tensor]:
        """``{"quality": [N], ...}``: every number ``__call__`` reports, one value per row of ``generated``."""
        raise NotImplementedError

    def __call__(self, generated: Generated) -> dict[str, float]:
        return self.means(self.rows(generated))

    @staticmethod
    def means(rows: dict[str, torch.Tensor]) -> dict[str, float]:
        """The numbers ``__call__`` reports from the per-row ones :meth:`rows` gives."""
        return {name: values.mean().item() for name, values in rows.items()}


BATCH_SIZE = 128  # images per forward pass of a metric model: a candidate's 1,000 images in 8 calls


def default_device(device: str | None) -> str:
    """Where a metric's model runs: the given device, else CUDA when there is one."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def row_batches(rows: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` rows: a candidate's images are scored a batch per call."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    return (slice(start, min(start + batch_size, rows)) for start in range(0, rows, batch_size))


class PromptImageMetric(RowMetric):
    """A reference-free model that scores each image against its own prompt; quality = the mean score.

    The model loads on first use (``cache_dir`` / ``local_files_only`` go to the hub download) and runs on
    ``device``, ``batch_size`` images per forward pass.
    """

    score_name: ClassVar[str] = ""

    def __init__(
        self,
        device: str | None = None,
        batch_size: int = BATCH_SIZE,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
    ) -> None:
        self.device = default_device(device)
        self.batch_size = batch_size
        self.hub = {"cache_dir": cache_dir, "local_files_only": local_files_only}
        self.model: Any = None

    def _load(self) -> None:
        """Set ``self.model`` (on ``self.device``) and whatever prepares its inputs."""
        raise NotImplementedError

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """One score per image (float [N, 3, H, W] in [0, 1]) for its prompt, as a float32 CPU tensor."""
        if self.model is None:
            self._load()
        return torch.cat(
            [
                self._score_batch([to_pil(image) for image in images[rows]], list(prompts[rows])).float().cpu()
                for rows in row_batches(len(prompts), self.batch_size)
            ]
        )

    def rows(self, generated: Generated) -> dict[str, torch.Tensor]:
        scores = self.score(generated.images, generated.prompts)
        return {"quality": scores, self.score_name: scores}
