"""``fidelity``: how close cached images stay to the uncached ones for the same prompts and seeds."""

from __future__ import annotations

import torch

from ..generation import Generated
from .base import RowMetric


class FidelityMetric(RowMetric):
    """Quality = mean SSIM to the uncached images (1.0 = identical); PSNR and relative latent error are logged."""

    name = "fidelity"
    needs_reference = True

    def __init__(self) -> None:
        self.reference: Generated | None = None

    def prepare(self, reference: Generated) -> None:
        self.reference = reference

    def rows(self, generated: Generated) -> dict[str, torch.Tensor]:
        # imported here: torchmetrics takes seconds to import, and most runs use another metric
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        if self.reference is None:
            raise RuntimeError("fidelity needs the uncached reference images: call prepare() first.")
        rows = slice(generated.first, generated.first + len(generated.images))  # its calibration rows
        ref = Generated(self.reference.images[rows], self.reference.latents[rows], self.reference.prompts[rows])
        if generated.images.shape != ref.images.shape:
            raise ValueError(
                f"generated images {tuple(generated.images.shape)} do not match the reference "
                f"{tuple(ref.images.shape)}; both must come from the same calibration rows."
            )
        ssim = structural_similarity_index_measure(generated.images, ref.images, data_range=1.0, reduction="none")
        psnr = peak_signal_noise_ratio(generated.images, ref.images, data_range=1.0, reduction="none", dim=(1, 2, 3))
        error = (generated.latents - ref.latents).flatten(1).norm(dim=1) / ref.latents.flatten(1).norm(dim=1)
        return {"quality": ssim, "ssim": ssim, "psnr": psnr.clamp(max=100.0), "latent_rel_error": error}
