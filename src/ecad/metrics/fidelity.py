"""``fidelity``: how close cached images stay to the uncached ones for the same prompts and seeds."""

from __future__ import annotations

from ..generation import Generated
from .base import QualityMetric


class FidelityMetric(QualityMetric):
    """Quality = mean SSIM to the uncached images (1.0 = identical); PSNR and relative latent error are logged."""

    name = "fidelity"
    needs_reference = True

    def __init__(self) -> None:
        self.reference: Generated | None = None

    def prepare(self, reference: Generated) -> None:
        self.reference = reference

    def __call__(self, generated: Generated) -> dict[str, float]:
        # imported here: torchmetrics takes seconds to import, and most runs use another metric
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        if self.reference is None:
            raise RuntimeError("fidelity needs the uncached reference images: call prepare() first.")
        ref = self.reference
        if generated.images.shape != ref.images.shape:
            raise ValueError(f"generated images {tuple(generated.images.shape)} do not match the reference "
                             f"{tuple(ref.images.shape)}; both must come from the same calibration rows.")
        ssim = structural_similarity_index_measure(generated.images, ref.images, data_range=1.0)
        psnr = peak_signal_noise_ratio(generated.images, ref.images, data_range=1.0, reduction="none", dim=(1, 2, 3))
        error = (generated.latents - ref.latents).flatten(1).norm(dim=1) / ref.latents.flatten(1).norm(dim=1)
        return {
            "quality": ssim.item(),
            "ssim": ssim.item(),
            "psnr": psnr.clamp(max=100.0).mean().item(),
            "latent_rel_error": error.mean().item(),
        }
