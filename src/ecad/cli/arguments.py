"""argparse ``type=`` functions built from ecad's value checks (:mod:`ecad.validation`): a bad argument is refused
while the command line is parsed, before anything loads, with the option named (``argument --steps: must be a
whole number >= 1, got 0``). The config dataclasses apply the same checks to the Python API."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import validation
from ..names import COMPILE_SCOPES, did_you_mean
from ..validation import Check, whole

_PARSED_AS = {int: "a whole number", float: "a number", str: "text"}


def typed(check: Check, parse: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text, then ``check`` the value."""

    def convert(value: str) -> Any:
        try:
            parsed = parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {_PARSED_AS.get(parse, 'a value')}, got {value!r}") from None
        try:
            return check(parsed)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


positive = typed(whole(1))
count = typed(whole(0))  # 0 allowed (seeds, warm-up calls, repeats, samples)
pixels = typed(validation.pixels)
guidance = typed(validation.real(0), float)
device = typed(validation.device, str)
text = typed(validation.text, str)


def split_names(value: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in value.split(",") if part.strip()]


def names(
    known: Iterable[str] | None = None,
    check: Check | None = None,
    what: str = "name",
    split: Callable[[str], list[str]] = split_names,
) -> Callable[[str], list[str]]:
    """A comma-separated list (as ``split`` cuts it); each name must be in ``known`` (or pass ``check``)."""
    options = sorted(known) if known is not None else None

    def convert(value: str) -> list[str]:
        items = split(value)
        for item in items:
            if options is not None and item not in options:
                raise argparse.ArgumentTypeError(
                    f"unknown {what} {item!r}{did_you_mean(item, options)}; choose from {', '.join(options)}"
                )
            if check is not None:
                try:
                    check(item)
                except ValueError as err:
                    raise argparse.ArgumentTypeError(str(err).rstrip(".")) from None
        return items

    return convert


def image_file(value: str) -> str:
    """An output image path whose suffix PIL can write (checked before generating, not after)."""
    from PIL import Image

    Image.init()
    if Path(value).suffix.lower() not in Image.EXTENSION:
        raise argparse.ArgumentTypeError(f"{value!r} has no image suffix PIL can write; use e.g. image.png")
    if Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a folder; give a file name such as {value}/image.png")
    return value


def add_compile(parser: argparse.ArgumentParser, purpose: str) -> None:
    """``--compile [regional|whole]`` and ``--compile-backend NAME`` (checked by the run's config, which imports
    torch: the parser does not)."""
    parser.add_argument(
        "--compile",
        nargs="?",
        const="regional",
        choices=COMPILE_SCOPES,
        metavar="SCOPE",
        help=f"{purpose}: regional (each block, the default SCOPE) or whole (the transformer's call)",
    )
    parser.add_argument(
        "--compile-backend",
        metavar="NAME",
        help="torch.compile's backend with --compile (default: inductor; eager traces without generating code)",
    )
