"""Seeded inputs for checking ecad's metric ports against the originals, and a local hub cache to load them from.

Shared by the equivalence scripts (which also run it in the originals' own environments: it needs only torch,
numpy and Pillow) and by the tests, which rebuild the same weights, images and vocabulary from the seed recorded
in the scripts' results and compare ecad's scores with the originals' recorded ones.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image

Layout = list[tuple[str, list[int], str]]  # (key, shape, dtype name) of every tensor of a checkpoint

BERT_SPECIAL = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_VOCAB_SIZE = 30522


def layout_of(state: Mapping[str, torch.Tensor]) -> Layout:
    return [(key, list(tensor.shape), str(tensor.dtype).removeprefix("torch.")) for key, tensor in state.items()]


def seeded_tensor(key: str, shape: list[int], dtype: str, generator: torch.Generator) -> torch.Tensor:
    """A value that keeps activations O(1) through deep random networks (no vanishing into denormals)."""
    if dtype == "int64":  # position ids are 0, 1, 2, ...; BatchNorm's num_batches_tracked is a count
        return torch.arange(shape[-1]).expand(*shape).clone() if shape else torch.tensor(0)
    normal = torch.randn(shape, generator=generator)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=generator)
    if len(shape) == 4:  # convolutions: He scale, for the ReLU networks
        return normal * math.sqrt(2.0 / math.prod(shape[1:]))
    if len(shape) >= 2:
        return normal * shape[-1] ** -0.5
    if key.endswith("weight"):  # norm scales
        return 1.0 + 0.1 * normal
    return 0.1 * normal  # biases, norm shifts, running means


def seeded_state_dict(layout: Layout, seed: int) -> dict[str, torch.Tensor]:
    """Every tensor of ``layout`` from one generator, in the layout's order."""
    generator = torch.Generator().manual_seed(seed)
    return {key: seeded_tensor(key, shape, dtype, generator).to(getattr(torch, dtype)) for key, shape, dtype in layout}


def seeded_images(count: int, height: int, width: int, seed: int) -> list[Image.Image]:
    """Smooth random RGB images (a random low-resolution pattern, bicubically enlarged, plus noise)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
            (width, height), Image.Resampling.BICUBIC
        )
        noise = rng.normal(0, 12, (height, width, 3))
        images.append(Image.fromarray(np.clip(np.asarray(coarse) + noise, 0, 255).astype(np.uint8)))
    return images


def bert_vocab(words: list[str]) -> list[str]:
    """A BERT WordPiece vocabulary with the special tokens at bert-base-uncased's ids (0, 100-103), ``words`` after
    them, and fillers up to bert-base-uncased's 30,522 entries."""
    vocab = BERT_SPECIAL + [w for w in dict.fromkeys(words) if w not in BERT_SPECIAL]
    return vocab + [f"filler{i}" for i in range(BERT_VOCAB_SIZE - len(vocab))]


def put_in_hub_cache(cache_dir: str | Path, repo: str, files: Mapping[str, str | bytes | Path]) -> Path:
    """Lay ``files`` out as huggingface_hub's cache holds a downloaded repository (``refs/main`` -> snapshot), so
    that ``hf_hub_download(repo, name, cache_dir=cache_dir, local_files_only=True)`` and ``from_pretrained``
    find them without a network. Values are text, bytes or a file to link."""
    root = Path(cache_dir) / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    for name, content in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            target.unlink(missing_ok=True)
            target.symlink_to(content.resolve())
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return snapshot


def equivalence_arguments(description: str, sides: list[str], results: Path) -> argparse.ArgumentParser:
    """The options of an equivalence script; ``--side`` (internal) runs one step in the original's environment."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--side", choices=sides, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--original-python", help="python of the throwaway environment with the original package")
    parser.add_argument("--original-path", default="", help="extra PYTHONPATH there (stand-in modules)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=results)
    return parser


def run_original_side(script: str, args: argparse.Namespace, side: str, work: Path) -> None:
    """Run ``script --side side`` with the original's python, in ``work``, offline."""
    path = os.pathsep.join(filter(None, [args.original_path, str(Path(__file__).parent)]))
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "THREADS": str(args.threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    subprocess.run([args.original_python, script, "--side", side, "--work", str(work)], cwd=work, env=env, check=True)
