"""Prompt files: plain text (one per line), a JSON list (of strings or of objects with a prompt field), or TSV/CSV
with a ``prompt`` (or ``Prompt``) column, as in the paper's PartiPrompts.tsv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

def _tiny_shapes(split: str, count: int) -> list[str]:
    """A fixed, evenly spread subset of the tiny-shapes captions of one split."""
    from .tiny_shapes.scenes import all_captions

    captions = all_captions(split)
    return [captions[i * len(captions) // count] for i in range(count)]


# Built-in prompt sets: the tiny-shapes training captions for calibration, held-out ones for evaluation.
BUILTIN = {
    "tiny-shapes": lambda: _tiny_shapes("train", 16),
    "tiny-shapes-heldout": lambda: _tiny_shapes("heldout", 64),
}


def load_prompts(source: str, limit: int | None = None) -> list[str]:
    """Prompts from a file or a built-in set name; errors name the file and what is wrong with it."""
    if source in BUILTIN:
        prompts = BUILTIN[source]()
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"prompt file not found: {path} (or use a built-in set: {', '.join(BUILTIN)})")
        prompts = _read(path)
    prompts = [p.strip() for p in prompts if p and p.strip()]
    if not prompts:
        raise ValueError(f"{source} contains no prompts; give a file with one prompt per line.")
    return prompts[:limit] if limit else prompts


def _read(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError(f"{path}: a JSON prompt file holds a list, found {type(data).__name__}.")
        return [item if isinstance(item, str) else _field(item, path) for item in data]
    if suffix in (".tsv", ".csv"):
        rows = list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
        return [_field(row, path) for row in rows]
    return text.splitlines()


def _field(item: dict, path: Path) -> str:
    for key in ("prompt", "Prompt", "caption", "text"):
        if isinstance(item, dict) and key in item:
            return str(item[key])
    raise ValueError(f"{path}: no 'prompt' field/column in {item!r}.")
