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
from ..validation import read_json, write_json
from .executed import Executed

INDEX_FORMAT = "ecad.eval-images/1"
INDEX_SCHEMA = {
    "type": "object",
    "required": ["format", "settings", "rows", "schedules"],
    "properties": {
        "format": {"const": INDEX_FORMAT},
        "settings": {"type": "object"},
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["row", "prompt", "seed"],
                "properties": {"row": {"type": "integer"}, "prompt": {"type": "string"}, "seed": {"type": "integer"}},
            },
        },
        "schedules": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["key", "schedule", "latents", "files"],
                "properties": {
                    "key": {"type": "string"},
                    "schedule": {"type": "string"},
                    "latents": {"type": "string"},
                    "files": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}


def safe_name(name: str) -> str:
    """A schedule name usable as a folder name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "schedule"


def _damaged(path: Path, err: Exception) -> ValueError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ValueError(
        f"{path} is damaged ({reason}); delete {path.parent} and run `ecad eval` again with the same "
        "--out: it generates that schedule's images again."
    )


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except Exception as err:  # safetensors raises several types for a damaged file
        raise _damaged(path, err) from None


def open_image(path: Path) -> Image.Image:
    """An eval image, fully read (a truncated or foreign file fails here, named)."""
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises these for truncated or foreign files
        raise _damaged(path, err) from None


def load_png(path: Path) -> torch.Tensor:
    array = np.asarray(open_image(path).convert("RGB"), dtype=np.float32) / 255.0
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
        wanted = {
            "format": INDEX_FORMAT,
            "settings": settings,
            "rows": [{"row": i, "prompt": p, "seed": s} for i, (p, s) in enumerate(rows)],
            "schedules": {},
        }
        self.check()
        if self.index_path.is_file():
            index = self.index
            changed = [
                f"{k}: {index['settings'].get(k)!r} -> {v!r}"
                for k, v in settings.items()
                if index["settings"].get(k) != v
            ]
            if index["rows"] != wanted["rows"]:
                changed.append("prompts or seeds differ")
            if changed:
                raise ValueError(
                    f"{self.path} holds images generated with other settings ({'; '.join(changed)}); "
                    "use the same settings to resume, or another --out."
                )
        else:
            self.index = wanted
            write_json(self.index, self.index_path)

    def read(self) -> dict[str, Any]:
        """Load an existing directory's index (for resuming, or for a report's images)."""
        if not self.index_path.is_file():
            raise FileNotFoundError(f"{self.path} holds no eval index.json; run `ecad eval --out {self.path}` first.")
        self.index = read_json(self.index_path, INDEX_SCHEMA, fix="it is not an ecad eval index; use another --out")
        return self.index

    def check(self) -> None:
        """Before any work: refuse a directory that is neither new, empty, nor a readable eval directory."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} is a file, not an eval directory; choose another --out.")
        if self.index_path.is_file():
            self.read()
        elif self.path.exists() and any(self.path.iterdir()):
            raise ValueError(f"{self.path} is not empty and holds no eval index.json; choose an empty or new --out.")

    def has(self, name: str, key: str) -> bool:
        """Whether ``name`` is stored for exactly this schedule (same key) with all its files."""
        entry = self.index["schedules"].get(name)
        if not entry or entry["key"] != key:
            return False
        files = [*entry["files"], entry["latents"], entry["schedule"], entry.get("executed")]
        return all(f and (self.path / f).is_file() for f in files)

    def save(
        self, name: str, key: str, method: CacheSchedule | dict[str, Any], generated: Generated, executed: Executed
    ) -> None:
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
        schedule_file = self.write_schedule(name, method)
        self.index["schedules"][name] = {
            "key": key,
            "kind": "schedule" if isinstance(method, CacheSchedule) else "peer",
            "schedule": schedule_file.relative_to(self.path).as_posix(),
            "latents": f"images/{name}/latents.safetensors",
            "executed": f"images/{name}/executed.safetensors",
            "files": files,
        }
        write_json(self.index, self.index_path)

    def write_schedule(self, name: str, method: CacheSchedule | dict[str, Any]) -> Path:
        """``schedules/<name>.json`` (a schedule, or a peer's description): written with the images, rewritten with
        the evaluation's numbers."""
        schedule_file = self.path / "schedules" / f"{name}.json"
        schedule_file.parent.mkdir(exist_ok=True)
        if isinstance(method, CacheSchedule):
            method.save(schedule_file)
        else:
            write_json(method, schedule_file)
        return schedule_file

    def load(self, name: str) -> Generated:
        """The stored images of ``name`` as float [0, 1] tensors, with their latents and prompts."""
        entry = self.index["schedules"][name]
        images = [load_png(self.path / f) for f in entry["files"]]
        if len(images) != len(self.index["rows"]) or len({tuple(im.shape) for im in images}) > 1:
            raise ValueError(
                f"{self.path / 'images' / name} holds {len(images)} images of sizes "
                f"{sorted({tuple(im.shape[1:]) for im in images})} for {len(self.index['rows'])} rows; "
                "delete it and run `ecad eval` again with the same --out to generate them again."
            )
        latents = _load_tensors(self.path / entry["latents"])["latents"]
        return Generated(torch.stack(images), latents, [row["prompt"] for row in self.index["rows"]])

    def executed(self, name: str) -> Executed:
        """What ran while ``name``'s images were generated."""
        return Executed.from_tensors(_load_tensors(self.path / self.index["schedules"][name]["executed"]))
