"""``fid``: Fréchet distance between the features of the generated set and a reference set.

The reference is the uncached generation of the same rows (how far caching moves the image distribution) or a
folder of images (real photos, e.g. COCO, for the classic FID). torchmetrics' ``FrechetInceptionDistance`` computes
the distance; the features come from the FID Inception-v3 (``inception.py``: torch-fidelity's network and published
weights, downloaded through torch.hub on first use) or from any ``nn.Module`` given as ``feature`` that maps float
images in [0, 1] ``[N, 3, H, W]`` to ``[N, D]`` features. FID is only meaningful with thousands of images; on a
handful it is a smoke signal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..generation import Generated
from .base import BATCH_SIZE, QualityMetric, default_device
from .inception import load_fid_inception

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def folder_images(folder: str | Path) -> Iterator[torch.Tensor]:
    """Every image in ``folder`` (sorted by name) as a float [1, 3, H, W] tensor in [0, 1]."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"FID reference folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise ValueError(f"FID needs at least 2 reference images; {folder} has {len(files)}.")
    for path in files:
        array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        yield torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


class FidMetric(QualityMetric):
    """Quality = -FID (higher is better, as for every metric); the FID itself is logged as ``fid``.

    ``reference``: ``None`` for the uncached images given to :meth:`prepare`, or a folder of reference images.
    """

    name = "fid"
    needs_reference = True

    def __init__(
        self,
        feature: nn.Module | None = None,
        reference: str | Path | None = None,
        batch_size: int = BATCH_SIZE,
        device: str | None = None,
    ) -> None:
        self.feature = feature
        self.reference = reference
        self.batch_size = batch_size
        self.device = default_device(device)
        self.fid = None

    def inception(self) -> nn.Module:
        """The feature extractor: the one given, else the FID Inception-v3 (loaded once)."""
        if self.feature is None:
            self.feature = load_fid_inception()
        return self.feature

    def _batches(self, images: torch.Tensor | Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """``batch_size`` images at a time; images from a folder are grouped while their sizes agree."""
        if isinstance(images, torch.Tensor):
            yield from images.split(self.batch_size)
            return
        pending: list[torch.Tensor] = []
        for image in images:
            if pending and (len(pending) == self.batch_size or pending[0].shape != image.shape):
                yield torch.cat(pending)
                pending = []
            pending.append(image)
        if pending:
            yield torch.cat(pending)

    @torch.inference_mode()
    def _update(self, images: torch.Tensor | Iterator[torch.Tensor], real: bool) -> None:
        for batch in self._batches(images):
            self.fid.update(batch.to(self.device), real=real)

    def prepare(self, reference: Generated) -> None:
        """Extract the reference features once; every schedule is then compared with the same statistics."""
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.fid = FrechetInceptionDistance(feature=self.inception(), normalize=True, reset_real_features=False).to(
            self.device
        )
        self._update(folder_images(self.reference) if self.reference is not None else reference.images, real=True)

    def __call__(self, generated: Generated) -> dict[str, float]:
        if self.fid is None:
            raise RuntimeError("fid needs its reference: call prepare() first.")
        if len(generated.images) < 2:
            raise ValueError("FID needs at least 2 generated images; use more prompts or --images-per-prompt.")
        self.fid.reset()  # keeps the reference features (reset_real_features=False)
        self._update(generated.images, real=False)
        value = float(self.fid.compute())
        return {"quality": -value, "fid": value}
