"""The ``ecad`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Every bad input is one line on stderr and exit code 1: an argument's type or range is refused while parsing (see
:mod:`.arguments`), files, models and directories when the command starts, before any model loads where the check
needs no model. Ctrl-C at any moment, the imports at start-up included, prints one line and exits 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


class UsageError(Exception):
    """A command line argparse refused."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse with ecad's convention for bad input: one line and exit code 1 (argparse's own is usage + 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(self.prog, message)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors in the user's input or environment (a missing optional extra), not ecad's bugs: one line, exit 1."""
    from ..adapters import UnsupportedModelError
    from ..schedule import ScheduleError
    from ..search import CorruptRunError

    return ScheduleError, UnsupportedModelError, CorruptRunError, OSError, ValueError, ImportError


def build_parser() -> argparse.ArgumentParser:
    from . import demo, evaluate, front, generate, macs, report, search, show

    parser = Parser(prog="ecad", description="Evolutionary caching for diffusion transformers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, show, macs, generate, search, front, evaluate, report):
        command.add_parser(sub)
    return parser


def _one_line(message: object) -> str:
    return " ".join(str(message).split("\n"))


def main(argv: Sequence[str] | None = None) -> int:
    prog = "ecad"
    try:
        parser = build_parser()  # imports torch and diffusers: inside the try, so Ctrl-C there is clean too
        args = parser.parse_args(argv)
        prog = f"ecad {args.command}"
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
        return int(args.run(args) or 0)
    except UsageError as err:
        print(f"{err.prog}: error: {_one_line(err)} (see `{err.prog} --help`)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not isinstance(err, _user_errors()):
            raise
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
