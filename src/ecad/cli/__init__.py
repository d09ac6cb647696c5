"""The ``ecad`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Subcommand modules import torch, diffusers and the rest of ecad inside ``run``, so building the parser (and
``ecad --help``) stays well under a second.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Sequence

from . import demo, evaluate, front, generate, macs, report, search, show

COMMANDS = (demo, show, macs, generate, search, front, evaluate, report)

# Errors in the user's input or environment (a missing optional extra), not ecad's bugs: one line, exit 1. ecad's own
# errors (ScheduleError, UnsupportedModelError, CorruptRunError) are ValueErrors, so naming them needs no import.
USER_ERRORS = (ValueError, OSError, ImportError)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, where it has one worth showing (not None, False or empty) and
    the help does not already say it; lists show as the comma-separated text they are given as."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if (not action.option_strings or default is None or default is False or default is argparse.SUPPRESS
                or default == [] or "(default" in text):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecad", description="Evolutionary caching for diffusion transformers.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=functools.partial(argparse.ArgumentParser, formatter_class=HelpFormatter))
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _configure_logging(verbose: bool) -> None:
    """ecad's own messages at INFO (DEBUG with -v); other libraries only when they warn."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ecad").setLevel(logging.DEBUG if verbose else logging.INFO)


def _stdout_closed() -> int:
    """The reader of our output went away (``ecad front --json | head``): stop quietly, as other tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except USER_ERRORS as err:
        print(f"ecad {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ecad {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
