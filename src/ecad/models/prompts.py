"""Prompt files: plain text (one per line), a JSON list (of strings or of objects with a prompt field), or TSV/CSV
with a ``prompt`` (or ``Prompt``) column, as in the paper's PartiPrompts.tsv. Files are UTF-8, with or without the
byte-order mark Excel writes; blank prompts are skipped; anything else that is not text is refused with the file and
the place named."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..validation import optional, read_json, whole

# Field (JSON) or column (TSV/CSV) names that hold the prompt, in order of preference.
PROMPT_FIELDS = ("prompt", "Prompt", "caption", "text")


class PromptError(ValueError):
    """A prompt file is missing, unreadable, or holds something that is not a prompt."""


def tiny_shapes_captions(split: str, count: int) -> list[str]:
    """A fixed, evenly spread subset of ``count`` tiny-shapes captions of one split (``"train"`` or ``"heldout"``)."""
    from .tiny_shapes.scenes import all_captions

    captions = all_captions(split)
    return [captions[i * len(captions) // count] for i in range(count)]


# Built-in prompt sets: the tiny-shapes training captions for calibration, held-out ones for evaluation.
BUILTIN = {
    "tiny-shapes": lambda: tiny_shapes_captions("train", 16),
    "tiny-shapes-heldout": lambda: tiny_shapes_captions("heldout", 64),
}


def load_prompts(source: str, limit: int | None = None) -> list[str]:
    """Prompts from a file or a built-in set.

    Args:
        source: a text file (one prompt per line), a JSON list (of strings or of objects with a ``prompt`` field),
            a TSV/CSV file with a ``prompt`` column, or a built-in set name (``tiny-shapes``,
            ``tiny-shapes-heldout``).
        limit: keep only the first ``limit`` prompts.

    Returns:
        The prompts, stripped, empty lines left out.

    Raises:
        PromptError: the file is missing, unreadable or holds no prompts; the message names it and the fix.
    """
    try:
        limit = optional(whole(1))(limit)
    except ValueError as err:
        raise PromptError(f"limit {err}; give the number of prompts to keep, or None for all.") from None
    if source in BUILTIN:
        prompts = BUILTIN[source]()
    else:
        path = Path(source)
        if not path.is_file():
            raise PromptError(f"prompt file not found: {path} (or use a built-in set: {', '.join(BUILTIN)})")
        prompts = _read(path)
    prompts = [p.strip() for p in prompts if p.strip()]
    if not prompts:
        raise PromptError(f"{source} contains no prompts; give a file with one prompt per line.")
    return prompts[:limit] if limit else prompts


def _read(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _from_json(path)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise PromptError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8.") from None
    if suffix in (".tsv", ".csv"):
        return _from_table(path, content, "\t" if suffix == ".tsv" else ",")
    return content.splitlines()


def _from_json(path: Path) -> list[str]:
    data = read_json(path, error=PromptError, fix='a JSON prompt file is a list of strings or of {"prompt": "..."}')
    if not isinstance(data, list):
        raise PromptError(f"{path}: a JSON prompt file holds a list, found {type(data).__name__}.")
    return [item if isinstance(item, str) else _field(item, path, f"item {i}") for i, item in enumerate(data)]


def _from_table(path: Path, content: str, delimiter: str) -> list[str]:
    try:
        reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)
        rows = list(reader)
    except csv.Error as err:
        raise PromptError(f"{path}: not a readable {'TSV' if delimiter == chr(9) else 'CSV'} file ({err}).") from None
    columns = reader.fieldnames or []
    if not any(name in columns for name in PROMPT_FIELDS):
        raise PromptError(
            f"{path}: no prompt column (one of {', '.join(PROMPT_FIELDS)}) in the header "
            f"{columns[:8]}; add a 'prompt' header or save the prompts one per line as .txt."
        )
    return [_field(row, path, f"row {i}") for i, row in enumerate(rows, start=1)]


def _field(item: Any, path: Path, where: str) -> str:
    if isinstance(item, dict):
        for key in PROMPT_FIELDS:
            if key in item:
                value = item[key]
                if not isinstance(value, str):
                    shown = "null (or a short row)" if value is None else f"{type(value).__name__} {value!r}"[:60]
                    raise PromptError(f"{path}, {where}: {key!r} is {shown}, expected the prompt's text.")
                return value
    raise PromptError(f"{path}, {where}: expected a string or an object with a 'prompt' field, got {str(item)[:60]!r}.")
