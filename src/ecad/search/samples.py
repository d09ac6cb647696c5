"""The first calibration images of each evaluated schedule, kept so the report shows them without the model.

A candidate's images are generated anyway to score it; keeping its first few (as PNGs of at most ``MAX_SIDE``
pixels, under ``samples/`` in the run directory) spares ``ecad report`` loading the model and generating them again.
After each generation the search keeps only the schedules the report shows (the front and the named baselines):
a schedule that falls off the front never comes back to it, so the directory stays small on long runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image

from ..metrics.images import to_pil

KEPT = 3  # images kept per schedule: `ecad report`'s default --samples
MAX_SIDE = 256


class SampleStore:
    """``samples/<digest>-<row>.png``: row ``i`` of the calibration set under the schedule with that key."""

    def __init__(self, run_path: str | Path, kept: int = KEPT) -> None:
        self.path = Path(run_path) / "samples"
        self.kept = kept

    def _file(self, key: str, row: int) -> Path:
        return self.path / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}-{row}.png"

    def keep(self, key: str, images: torch.Tensor) -> None:
        """Write the first ``kept`` images (float [N, 3, H, W] in [0, 1]); each file appears whole or not at all."""
        self.path.mkdir(exist_ok=True)
        for row, image in enumerate(images[: self.kept]):
            picture = to_pil(image)
            picture.thumbnail((MAX_SIDE, MAX_SIDE))
            target = self._file(key, row)
            tmp = target.with_name(target.stem + ".tmp.png")
            picture.save(tmp)
            tmp.replace(target)

    def load(self, key: str, limit: int) -> list[Image.Image] | None:
        """The first ``limit`` kept images of ``key``, or ``None`` if fewer were kept."""
        files = [self._file(key, row) for row in range(limit)]
        if limit > self.kept or not all(f.is_file() for f in files):
            return None
        return [Image.open(f).convert("RGB") for f in files]

    def retain(self, keys: Iterable[str]) -> None:
        """Delete the images of every schedule not in ``keys``."""
        if not self.path.is_dir():
            return
        wanted = {hashlib.sha1(k.encode()).hexdigest()[:20] for k in keys}
        for file in self.path.glob("*.png"):
            if file.name.split("-")[0] not in wanted:
                file.unlink(missing_ok=True)
