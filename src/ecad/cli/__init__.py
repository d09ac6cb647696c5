"""The ``ecad`` command line: one module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..adapters import UnsupportedModelError
from ..schedule import ScheduleError
from ..search import CorruptRunError
from . import demo, evaluate, front, generate, macs, report, search, show

COMMANDS = (demo, show, macs, generate, search, front, evaluate, report)

# Errors in the user's input or environment (a missing optional extra), not ecad's bugs: one line, exit 1.
USER_ERRORS = (
    ScheduleError, UnsupportedModelError, CorruptRunError, FileNotFoundError, ValueError, OSError, ImportError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecad", description="Evolutionary caching for diffusion transformers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as err:
        print(f"ecad {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ecad {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
