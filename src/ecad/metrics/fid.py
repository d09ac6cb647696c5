"""``fid``: Fréchet distance between the features of the generated set and a reference set.

The reference is the uncached generation of the same rows (how far caching moves the image distribution) or a
folder of images (real photos, e.g. COCO, for the classic FID). Features come from torch-fidelity's Inception-v3
(optional extra ``ecad[fid]``; its weights are downloaded on first use) or from any ``nn.Module`` given as
``feature`` that maps float images in [0, 1] ``[N, 3, H, W]`` to ``[N, D]`` features. FID is only meaningful with
thousands of images; on a handful it is a smoke signal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..generation import Generated
from .base import QualityMetric

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
INCEPTION_WEIGHTS = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


def inception_feature() -> int:
    """torchmetrics' Inception-v3 pool features (2048), checked to be importable with a message that says how."""
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if not _TORCH_FIDELITY_AVAILABLE:
        raise ImportError("the fid metric's Inception-v3 needs torch-fidelity: pip install 'ecad[fid]' "
                          "(or pass a feature extractor module as `feature`).")
    return 2048


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

    def __init__(self, feature: nn.Module | None = None, reference: str | Path | None = None,
                 batch_size: int = 32, device: str | None = None) -> None:
        self.feature = feature
        self.reference = reference
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.fid = None

    def _build(self) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        feature = self.feature if self.feature is not None else inception_feature()
        try:
            self.fid = FrechetInceptionDistance(feature=feature, normalize=True, reset_real_features=False)
        except (OSError, RuntimeError) as err:  # the Inception weights are downloaded on first use
            raise OSError(f"cannot load the Inception-v3 weights ({str(err).splitlines()[0]}); download "
                          f"{INCEPTION_WEIGHTS} into the torch hub cache (~/.cache/torch/hub/checkpoints/) on a "
                          "machine with network access.") from None
        self.fid = self.fid.to(self.device)

    @torch.inference_mode()
    def _update(self, images: torch.Tensor | Iterator[torch.Tensor], real: bool) -> None:
        batches = images.split(self.batch_size) if isinstance(images, torch.Tensor) else images
        for batch in batches:
            self.fid.update(batch.to(self.device), real=real)

    def prepare(self, reference: Generated) -> None:
        """Extract the reference features once; every schedule is then compared with the same statistics."""
        self._build()
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
