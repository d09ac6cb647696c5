"""Reference-free reward for tiny-shapes: a small CNN that reads a scene's attributes from pixels.

The network predicts a layout class (five single-object positions, or a vertical / horizontal pair)
and, for up to two object slots, shape, colour and size. Pairs are read in a canonical order (top
then bottom, left then right), so "A above B" and "B below A" describe the same image. The reward of
(image, caption) is the predicted probability of exactly the caption's attributes, in [0, 1]; the
project's stand-in for ImageReward. The penultimate features give a FID-style distance ("shape-FID").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .scenes import COLOURS, POSITIONS, SHAPES, SIZES, SceneSpec, parse_caption

LAYOUTS: tuple[str, ...] = (*POSITIONS, "vertical pair", "horizontal pair")
ATTRIBUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shape", SHAPES),
    ("colour", tuple(COLOURS)),
    ("size", tuple(SIZES)),
)
HEAD_SIZES: tuple[int, ...] = (len(LAYOUTS), *[len(v) for _, v in ATTRIBUTES] * 2)  # layout, slot 0, slot 1
IGNORE = -100
INPUT_SIZE = 64


@dataclass(frozen=True)
class RewardConfig:
    channels: tuple[int, ...] = (32, 64, 64, 128, 128)
    feature_dim: int = 128


class RewardModel(nn.Module):
    def __init__(self, config: RewardConfig | None = None) -> None:
        super().__init__()
        self.config = config or RewardConfig()
        c = self.config.channels
        strides = (2, 2, 1, 2, 2)  # 64 -> 4: keep a 4x4 grid so positions stay readable
        layers: list[nn.Module] = []
        for c_in, c_out, stride in zip((3, *c[:-1]), c, strides, strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(8, c_out), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.feature = nn.Sequential(nn.Flatten(), nn.Linear(c[-1] * 16, self.config.feature_dim), nn.ReLU())
        self.head = nn.Linear(self.config.feature_dim, sum(HEAD_SIZES))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [0, 1] -> [N, feature_dim]."""
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True)
        return self.feature(self.conv((images - 0.5) / 0.25))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Logits per head: layout, then shape/colour/size of slot 0 and of slot 1."""
        return list(self.head(self.features(images)).split(HEAD_SIZES, dim=1))

    @torch.no_grad()
    def score(self, images: torch.Tensor, captions: list[str]) -> torch.Tensor:
        """Probability that each image shows its caption: [N] in [0, 1]; > 0.5 counts as a match."""
        images = images.to(self.head.weight.device, self.head.weight.dtype)
        log_probs = [F.log_softmax(logits.float(), dim=1) for logits in self(images)]
        target = targets([parse_caption(c) for c in captions]).to(images.device)
        total = torch.zeros(len(captions), device=images.device)
        for k, lp in enumerate(log_probs):
            used = target[:, k] != IGNORE
            total[used] += lp[used].gather(1, target[used, k : k + 1]).squeeze(1)
        return total.exp().cpu()

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, directory / "model.safetensors")

    @classmethod
    def load(cls, directory: str | Path) -> RewardModel:
        directory = Path(directory)
        raw = json.loads((directory / "config.json").read_text())
        model = cls(RewardConfig(channels=tuple(raw["channels"]), feature_dim=raw["feature_dim"]))
        model.load_state_dict(load_file(directory / "model.safetensors"))
        return model.eval()


def _canonical_objects(spec: SceneSpec) -> tuple[str, tuple]:
    """(layout, objects in slot order): pairs become top-then-bottom or left-then-right."""
    if spec.relation is None:
        return spec.position, spec.objects
    first, second = spec.objects
    if spec.relation in ("above", "below"):
        return "vertical pair", (first, second) if spec.relation == "above" else (second, first)
    return "horizontal pair", (first, second) if spec.relation == "to the left of" else (second, first)


def targets(specs: list[SceneSpec]) -> torch.Tensor:
    """Class indices [N, 7] per head, IGNORE for the empty second slot of one-object scenes."""
    rows = []
    for spec in specs:
        kind, objects = _canonical_objects(spec)
        row = [LAYOUTS.index(kind)]
        for slot in range(2):
            for name, values in ATTRIBUTES:
                row.append(values.index(getattr(objects[slot], name)) if slot < len(objects) else IGNORE)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long)


def loss(logits: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    return sum(F.cross_entropy(lg, target[:, k], ignore_index=IGNORE) for k, lg in enumerate(logits))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mild blur, noise and contrast jitter so the judge tolerates VAE-decoded images, not wrong content."""
    n = images.shape[0]
    sigma = torch.rand(n, generator=generator) * 1.0
    kernel_x = torch.arange(-2, 3, dtype=torch.float32)
    kernels = torch.exp(-(kernel_x[None] ** 2) / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    kernels = kernels / kernels.sum(1, keepdim=True)  # [N, 5] separable Gaussian, sigma in [0, 1] px
    padded = F.pad(images, (2, 2, 2, 2), mode="replicate")
    rows = sum(kernels[:, i].view(n, 1, 1, 1) * padded[..., i : i + images.shape[-2], :] for i in range(5))
    blurred = sum(kernels[:, i].view(n, 1, 1, 1) * rows[..., i : i + images.shape[-1]] for i in range(5))
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.1
    noise = torch.randn(images.shape, generator=generator) * torch.rand(n, 1, 1, 1, generator=generator) * 0.05
    return (blurred * gain + noise).clamp(0, 1)


@torch.no_grad()
def features(model: RewardModel, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    device, dtype = model.head.weight.device, model.head.weight.dtype
    return torch.cat(
        [
            model.features(images[i : i + batch_size].to(device, dtype)).float().cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), via symmetric eigendecompositions."""
    a, b = feats_a.double().numpy(), feats_b.double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(w.clip(min=0))) @ v.T
    cross = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(cross.clip(min=0)).sum()
    return float(max(value, 0.0))


def shape_fid(model: RewardModel, images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """Fréchet distance between two image sets in the reward model's feature space."""
    return frechet_distance(features(model, images_a), features(model, images_b))
