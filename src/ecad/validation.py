"""Validation at ecad's edges, in one place: strict JSON files checked against JSON Schemas, and value checks that
the command line (argparse ``type=`` functions) and the Python API (config dataclasses) share.

Every check raises with one line that names the input at fault and says what is expected, before any expensive
work. Schemas say what shape a file has; what a schema cannot say (a bit string as long as ``num_steps``) is checked
by the code that reads the file, next to its schema.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Check = Callable[[Any], Any]


# ---------------------------------------------------------------------- values
def whole(minimum: int, maximum: int | None = None) -> Check:
    """A whole number in ``[minimum, maximum]`` (booleans are not numbers)."""
    bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def check(value: Any) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            raise ValueError(f"must be a whole number {bound}, got {value!r}")
        return int(value)

    return check


def real(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None) -> Check:
    """A finite number in ``[minimum, maximum]``, or greater than ``above``."""
    bounds = [
        f">= {minimum:g}" if minimum is not None else "",
        f"> {above:g}" if above is not None else "",
        f"<= {maximum:g}" if maximum is not None else "",
    ]
    bound = "".join(f" {b}" for b in bounds if b)

    def check(value: Any) -> float:
        ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
        if (
            not ok
            or (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (maximum is not None and value > maximum)
        ):
            raise ValueError(f"must be a finite number{bound}, got {value!r}")
        return float(value)

    return check


def pixels(value: Any) -> int:
    """An image side in pixels: every supported model needs a positive multiple of 8 (the VAE factor); the model's
    exact multiple (8 x its patch size) is checked by :func:`ecad.models.loading.check_image_size`."""
    size = whole(8)(value) if not isinstance(value, bool) and isinstance(value, numbers.Integral) else None
    if size is None or size % 8:
        raise ValueError(f"must be a positive multiple of 8 pixels, got {value!r}")
    return size


def one_of(choices: Iterable[str]) -> Check:
    options = tuple(choices)

    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return value

    return check


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be True or False, got {value!r}")
    return value


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be non-empty text, got {value!r}")
    return value


def texts(value: Any) -> list[str]:
    """A non-empty list of non-empty strings (prompts)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"must be a non-empty list of strings, got {type(value).__name__} {_short(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"item {i} must be non-empty text, got {item!r}")
    return list(value)


def each(check: Check) -> Check:
    """A list whose every item passes ``check``."""

    def check_all(value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list, got {type(value).__name__}")
        return [check(item) for item in value]

    return check_all


def optional(check: Check) -> Check:
    """``check``, or ``None`` (meaning: the default)."""
    return lambda value: None if value is None else check(value)


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def device(value: Any) -> str:
    """``auto`` or a torch device string (``cpu``, ``cuda``, ``cuda:1``, ...); whether it exists is checked where it
    is used (:func:`ecad.models.loading.resolve_device`), since a Ray worker may have a GPU its driver lacks."""
    import torch

    if value == "auto":
        return value
    try:
        parsed = torch.device(value)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        raise ValueError(f"must be auto or a device such as {', '.join(DEVICE_TYPES)}, cuda:1, got {value!r}")
    return value


def compile_backend(value: Any) -> str:
    """A ``torch.compile`` backend registered with dynamo (``inductor``, ``eager``, ``aot_eager``, ...)."""
    import torch._dynamo

    if value not in torch._dynamo.list_backends(exclude_tags=()):
        usual = sorted({"eager", *torch._dynamo.list_backends()})
        raise ValueError(f"must be a torch.compile backend such as {', '.join(usual)}, got {value!r}")
    return value


# ---------------------------------------------------------------------- config dataclasses
def checked(check: Check, **field_options: Any) -> Any:
    """A dataclass field (``default=...`` or ``default_factory=...``) whose value :func:`check_fields` validates."""
    return dataclasses.field(metadata={"check": check}, **field_options)


def check_fields(obj: Any) -> None:
    """Validate (and normalise) every :func:`checked` field of a dataclass; call it from ``__post_init__``."""
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        if check is None:
            continue
        try:
            object.__setattr__(obj, f.name, check(getattr(obj, f.name)))
        except ValueError as err:
            raise ValueError(f"{f.name} {err}") from None


# ---------------------------------------------------------------------- JSON files
def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_json(content: str) -> Any:
    """Strict JSON: no NaN/Infinity, no duplicate keys (which would silently drop a value)."""
    return json.loads(content, parse_constant=_no_constant, object_pairs_hook=_unique_keys)


def _short(value: Any, limit: int = 60) -> str:
    shown = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


_VALIDATORS: dict[int, Any] = {}


def schema_problem(data: Any, schema: dict[str, Any]) -> str | None:
    """What is wrong with ``data`` under ``schema`` (one short phrase with where), or ``None``."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        validator = _VALIDATORS[id(schema)] = Draft202012Validator(schema)
    try:
        error = best_match(validator.iter_errors(data))
    except RecursionError:
        return "nested too deeply"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    where = f"'{where}'" if where else "the top level"
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = [name for name in expected if name not in value]
        reason = f"{where} lacks the field '{missing[0]}'"
    elif kind == "type":
        names = expected if isinstance(expected, list) else [expected]
        reason = f"{where} is {_kind(value)} {_short(value, 30)}, expected {' or '.join(names)}"
    elif kind in ("minimum", "exclusiveMinimum"):
        reason = f"{where} is {value!r}, must be {'>=' if kind == 'minimum' else '>'} {expected}"
    elif kind in ("minItems", "minProperties", "minLength"):
        reason = f"{where} is empty"
    elif kind == "uniqueItems":
        reason = f"{where} has repeated entries"
    elif kind in ("const", "enum"):
        options = [expected] if kind == "const" else expected
        reason = f"{where} is {_short(value, 30)}, expected {' or '.join(json.dumps(o) for o in options)}"
    else:
        reason = f"{where}: {error.message[:120]}"
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    return f"{reason} ({description})" if description else reason


def read_json(
    path: str | Path, schema: dict[str, Any] | None = None, *, error: type[Exception] = ValueError, fix: str = ""
) -> Any:
    """The content of a JSON file, strictly parsed and checked against ``schema``; every problem is one
    ``error(...)`` line naming the file, what is wrong and ``fix``."""
    path = Path(path)
    tail = f"; {fix}" if fix else ""
    try:
        data = parse_json(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text{tail}") from None
    except (ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise error(f"{path} is damaged: not valid JSON ({reason}){tail}") from None
    except OSError as err:
        raise error(f"cannot read {path} ({err.strerror or err}){tail}") from None
    problem = schema_problem(data, schema) if schema is not None else None
    if problem:
        raise error(f"{path}: {problem}{tail}")
    return data


def write_json(data: dict[str, Any], path: str | os.PathLike, text: str | None = None) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text if text is not None else json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
