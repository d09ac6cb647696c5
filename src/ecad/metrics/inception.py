"""The FID Inception-v3 (TensorFlow's 2015-12-05 graph), without torchvision or torch-fidelity.

torch-fidelity's ``FeatureExtractorInceptionV3`` is the network every FID implementation agrees on (TF's Inception
with its quirks: average pools that do not count padding, a max pool in the last block, BatchNorm eps 1e-3), but
torch-fidelity imports torchvision, which has no build for this project's torch. This module rebuilds the same
network with the same module names, so torch-fidelity's published weights load strictly, and feeds it as
torchmetrics' ``FrechetInceptionDistance`` feeds torch-fidelity's (images quantised to 8 bits, bilinear resize with
antialiasing to 299 px, (x - 128) / 128). ``scripts/fid_inception_equivalence.py`` compares it with torchmetrics +
torch-fidelity on the same random weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .weights import load_exact, torch_hub_weights

WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
UNUSED_PREFIXES = ("fc.",)  # the 1008-class logits: in the weights file, not part of the 2048 pool features
INPUT_SIZE = 299
FEATURES = 2048

Kernel = int | tuple[int, int]


@dataclass(frozen=True)
class Conv:
    """One convolution + BatchNorm + ReLU of a branch: its module name, output channels, kernel, stride, padding."""

    name: str
    out: int
    kernel: Kernel = 1
    stride: int = 1
    padding: Kernel = 0


def avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)  # TF does not count padding


def max_pool_same(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def max_pool_reduce(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=2)


@dataclass(frozen=True)
class Branch:
    """``pool`` (optional), then ``convs`` in sequence, then ``split``: two convs on the same input, concatenated."""

    convs: tuple[Conv, ...] = ()
    pool: Callable[[torch.Tensor], torch.Tensor] | None = None
    split: tuple[Conv, Conv] | None = None


class ConvBN(nn.Module):
    def __init__(self, channels: int, conv: Conv) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, conv.out, conv.kernel, stride=conv.stride, padding=conv.padding, bias=False)
        self.bn = nn.BatchNorm2d(conv.out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Mixed(nn.Module):
    """An Inception block: its branches run on the same input and their outputs are concatenated."""

    def __init__(self, channels: int, branches: Sequence[Branch]) -> None:
        super().__init__()
        self.branches = tuple(branches)
        self.out_channels = 0
        for branch in self.branches:
            width = channels
            for conv in branch.convs:
                self.add_module(conv.name, ConvBN(width, conv))
                width = conv.out
            for conv in branch.split or ():
                self.add_module(conv.name, ConvBN(width, conv))
            self.out_channels += sum(c.out for c in branch.split) if branch.split else width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for branch in self.branches:
            y = branch.pool(x) if branch.pool else x
            for conv in branch.convs:
                y = self._modules[conv.name](y)
            if branch.split:
                y = torch.cat([self._modules[conv.name](y) for conv in branch.split], 1)
            outputs.append(y)
        return torch.cat(outputs, 1)


def block_a(pool_features: int) -> list[Branch]:
    return [
        Branch((Conv("branch1x1", 64),)),
        Branch((Conv("branch5x5_1", 48), Conv("branch5x5_2", 64, 5, padding=2))),
        Branch(
            (
                Conv("branch3x3dbl_1", 64),
                Conv("branch3x3dbl_2", 96, 3, padding=1),
                Conv("branch3x3dbl_3", 96, 3, padding=1),
            )
        ),
        Branch((Conv("branch_pool", pool_features),), pool=avg_pool),
    ]


def block_b() -> list[Branch]:
    return [
        Branch((Conv("branch3x3", 384, 3, stride=2),)),
        Branch(
            (
                Conv("branch3x3dbl_1", 64),
                Conv("branch3x3dbl_2", 96, 3, padding=1),
                Conv("branch3x3dbl_3", 96, 3, stride=2),
            )
        ),
        Branch(pool=max_pool_reduce),
    ]


def block_c(c7: int) -> list[Branch]:
    def row(name: str, out: int) -> Conv:  # the factorised 7x7 convolutions: 1x7 and 7x1
        return Conv(name, out, (1, 7), padding=(0, 3))

    def col(name: str, out: int) -> Conv:
        return Conv(name, out, (7, 1), padding=(3, 0))

    return [
        Branch((Conv("branch1x1", 192),)),
        Branch((Conv("branch7x7_1", c7), row("branch7x7_2", c7), col("branch7x7_3", 192))),
        Branch(
            (
                Conv("branch7x7dbl_1", c7),
                col("branch7x7dbl_2", c7),
                row("branch7x7dbl_3", c7),
                col("branch7x7dbl_4", c7),
                row("branch7x7dbl_5", 192),
            )
        ),
        Branch((Conv("branch_pool", 192),), pool=avg_pool),
    ]


def block_d() -> list[Branch]:
    return [
        Branch((Conv("branch3x3_1", 192), Conv("branch3x3_2", 320, 3, stride=2))),
        Branch(
            (
                Conv("branch7x7x3_1", 192),
                Conv("branch7x7x3_2", 192, (1, 7), padding=(0, 3)),
                Conv("branch7x7x3_3", 192, (7, 1), padding=(3, 0)),
                Conv("branch7x7x3_4", 192, 3, stride=2),
            )
        ),
        Branch(pool=max_pool_reduce),
    ]


def block_e(pool: Callable[[torch.Tensor], torch.Tensor]) -> list[Branch]:
    def split(prefix: str) -> tuple[Conv, Conv]:
        return Conv(f"{prefix}a", 384, (1, 3), padding=(0, 1)), Conv(f"{prefix}b", 384, (3, 1), padding=(1, 0))

    return [
        Branch((Conv("branch1x1", 320),)),
        Branch((Conv("branch3x3_1", 384),), split=split("branch3x3_2")),
        Branch((Conv("branch3x3dbl_1", 448), Conv("branch3x3dbl_2", 384, 3, padding=1)), split=split("branch3x3dbl_3")),
        Branch((Conv("branch_pool", 192),), pool=pool),
    ]


class FidInceptionV3(nn.Module):
    """Images -> the 2048 pool features FID uses. Takes float images in [0, 1] (as ``FidMetric`` gets them) or
    uint8 images, ``[N, 3, H, W]`` of any size."""

    num_features = FEATURES  # read by torchmetrics instead of running a dummy image

    def __init__(self) -> None:
        super().__init__()
        stem = (
            Conv("Conv2d_1a_3x3", 32, 3, stride=2),
            Conv("Conv2d_2a_3x3", 32, 3),
            Conv("Conv2d_2b_3x3", 64, 3, padding=1),
            None,
            Conv("Conv2d_3b_1x1", 80),
            Conv("Conv2d_4a_3x3", 192, 3),
        )
        channels, self.stem = 3, []
        for conv in stem:
            if conv is None:
                self.stem.append(max_pool_reduce)  # MaxPool_1 between the two halves of the stem
                continue
            self.add_module(conv.name, ConvBN(channels, conv))
            self.stem.append(self._modules[conv.name])
            channels = conv.out
        self.stem.append(max_pool_reduce)  # MaxPool_2
        blocks = (
            ("Mixed_5b", block_a(32)),
            ("Mixed_5c", block_a(64)),
            ("Mixed_5d", block_a(64)),
            ("Mixed_6a", block_b()),
            ("Mixed_6b", block_c(128)),
            ("Mixed_6c", block_c(160)),
            ("Mixed_6d", block_c(160)),
            ("Mixed_6e", block_c(192)),
            ("Mixed_7a", block_d()),
            ("Mixed_7b", block_e(avg_pool)),
            ("Mixed_7c", block_e(max_pool_same)),
        )
        self.blocks = []
        for name, branches in blocks:
            block = Mixed(channels, branches)
            self.add_module(name, block)
            self.blocks.append(block)
            channels = block.out_channels
        self.eval()

    def train(self, mode: bool = True) -> FidInceptionV3:
        return super().train(False)  # BatchNorm always uses its published statistics

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            images = (images * 255).byte()  # what torchmetrics' FID does with normalize=True: truncation
        x = F.interpolate(
            images.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True
        )
        x = (x - 128) / 128
        for layer in (*self.stem, *self.blocks):
            x = layer(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_fid_inception(url: str = WEIGHTS_URL) -> FidInceptionV3:
    """The FID Inception with torch-fidelity's published weights (torch.hub download on first use, 91 MB)."""
    model = FidInceptionV3()
    state = {k: v for k, v in torch_hub_weights(url).items() if not k.startswith(UNUSED_PREFIXES)}
    for key in model.state_dict():  # the file has no BatchNorm step counters (unused when not training): 0,
        if key.endswith("num_batches_tracked"):  # as torch's BatchNorm sets them for such files
            state.setdefault(key, torch.tensor(0))
    load_exact(model, state, url)
    return model
