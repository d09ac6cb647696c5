"""The images an evaluation generated, kept so it can resume and recompute metrics without generating again.

Layout of an eval directory::

    index.json                 settings, rows (row -> prompt, seed) and, per schedule, its key and image files
    schedules/<name>.json      the schedule each image set was generated with (for another library's method: its
                               spec, library version and settings, ``"format": "ecad.peer/1"``)
    images/<name>/NNNN.png     one image per row
    images/<name>/latents.safetensors   the final latents (metrics such as fidelity's latent error read them)
    images/<name>/executed.safetensors  what really ran while generating them (see :mod:`.executed`)

A schedule's entry is written to ``index.json`` only after all its files are, so an interrupted run regenerates at
most the schedule it was working on. Metrics are always computed from the stored PNGs, so a resumed run gives the
same numbers as an uninterrupted one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ..generation import Generated
from ..metrics.images import to_pil
from ..schedule import CacheSchedule
from ..schedule_io import write_json
from .executed import Executed

INDEX_FORMAT = "ecad.eval-images/1"


def safe_name(name: str) -> str:
    """A schedule name usable as a folder name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "schedule"


def load_png(path: Path) -> torch.Tensor:
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


class ImageStore:
    """Reads and writes an eval directory's images and ``index.json``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.index: dict[str, Any] = {}

    @property
    def index_path(self) -> Path:
        return self.path / "index.json"

    def open(self, settings: dict[str, Any], rows: list[tuple[str, int]]) -> None:
        """Start a new directory or check that an existing one was generated with the same settings and rows."""
        wanted = {"format": INDEX_FORMAT, "settings": settings,
                  "rows": [{"row": i, "prompt": p, "seed": s} for i, (p, s) in enumerate(rows)], "schedules": {}}
        if self.index_path.is_file():
            index = self.read()
            changed = [f"{k}: {index['settings'].get(k)!r} -> {v!r}" for k, v in settings.items()
                       if index["settings"].get(k) != v]
            if index["rows"] != wanted["rows"]:
                changed.append("prompts or seeds differ")
            if changed:
                raise ValueError(f"{self.path} holds images generated with other settings ({'; '.join(changed)}); "
                                 "use the same settings to resume, or another --out.")
        elif self.path.exists() and any(self.path.iterdir()):
            raise ValueError(f"{self.path} is not empty and holds no eval index.json; choose an empty or new --out.")
        else:
            self.index = wanted
            write_json(self.index, self.index_path)

    def read(self) -> dict[str, Any]:
        """Load an existing directory's index (for resuming, or for a report's images)."""
        if not self.index_path.is_file():
            raise FileNotFoundError(f"{self.path} holds no eval index.json; run `ecad eval --out {self.path}` first.")
        try:
            index = json.loads(self.index_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{self.index_path} is damaged ({err}); delete it or use another --out.") from None
        if index.get("format") != INDEX_FORMAT:
            raise ValueError(f"{self.index_path} is not an ecad eval index; use another --out.")
        self.index = index
        return index

    def has(self, name: str, key: str) -> bool:
        """Whether ``name`` is stored for exactly this schedule (same key) with all its files."""
        entry = self.index["schedules"].get(name)
        if not entry or entry["key"] != key:
            return False
        files = [*entry["files"], entry["latents"], entry["schedule"], entry.get("executed")]
        return all(f and (self.path / f).is_file() for f in files)

    def save(self, name: str, key: str, method: CacheSchedule | dict[str, Any], generated: Generated,
             executed: Executed) -> None:
        """Store one row's images, latents, what ran and the schedule (or peer description) it ran under."""
        folder = self.path / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for row, image in enumerate(generated.images):
            file = folder / f"{row:04d}.png"
            to_pil(image).save(file)
            files.append(file.relative_to(self.path).as_posix())
        save_file({"latents": generated.latents.contiguous()}, str(folder / "latents.safetensors"))
        save_file(executed.tensors(), str(folder / "executed.safetensors"))
        schedule_file = self.path / "schedules" / f"{name}.json"
        schedule_file.parent.mkdir(exist_ok=True)
        if isinstance(method, CacheSchedule):
            method.save(schedule_file)
        else:
            write_json(method, schedule_file)
        self.index["schedules"][name] = {
            "key": key, "kind": "schedule" if isinstance(method, CacheSchedule) else "peer",
            "schedule": schedule_file.relative_to(self.path).as_posix(), "latents": f"images/{name}/latents.safetensors",
            "executed": f"images/{name}/executed.safetensors", "files": files}
        write_json(self.index, self.index_path)

    def load(self, name: str) -> Generated:
        """The stored images of ``name`` as float [0, 1] tensors, with their latents and prompts."""
        entry = self.index["schedules"][name]
        images = torch.stack([load_png(self.path / f) for f in entry["files"]])
        latents = load_file(self.path / entry["latents"])["latents"]
        return Generated(images, latents, [row["prompt"] for row in self.index["rows"]])

    def executed(self, name: str) -> Executed:
        """What ran while ``name``'s images were generated."""
        return Executed.from_tensors(load_file(self.path / self.index["schedules"][name]["executed"]))
