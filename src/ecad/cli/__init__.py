"""The ``ecad`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Every bad input is one line on stderr and exit code 1: an argument's type or range is refused while parsing (see
:mod:`.arguments`), files, models and directories when the command starts, before any model loads where the check
needs no model. Ctrl-C at any moment prints one line and exits 130. Subcommand modules import torch, diffusers and
the rest of ecad inside ``run``, so building the parser (and ``ecad --help``) stays well under a second.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ..names import did_you_mean
from . import demo, evaluate, front, generate, macs, report, search, show

COMMANDS = (demo, show, macs, generate, search, front, evaluate, report)

# Errors in the user's input or environment (a missing optional extra), not ecad's bugs: one line, exit 1. ecad's own
# errors (ScheduleError, UnsupportedModelError, CorruptRunError) are ValueErrors, so naming them needs no import.
USER_ERRORS = (ValueError, OSError, ImportError)


class UsageError(Exception):
    """A command line argparse refused."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, where it has one worth showing (not None, False or empty) and
    the help does not already say it; lists show as the comma-separated text they are given as."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if (
            not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
            or "(default" in text
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


class Parser(argparse.ArgumentParser):
    """argparse with ecad's convention for bad input: one line and exit code 1 (argparse's own is usage + 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(self.prog, message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a ``choices`` option (and of the command name), with the nearest choice suggested
        (what Python 3.14's ``suggest_on_error`` adds)."""
        try:
            super()._check_value(action, value)  # type: ignore[misc]
        except argparse.ArgumentError as err:
            hint = did_you_mean(str(value), map(str, action.choices or ()))
            if not hint:
                raise
            raise argparse.ArgumentError(action, f"{err.message}{hint}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ecad", description="Evolutionary caching for diffusion transformers.", formatter_class=HelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        parser_class=functools.partial(Parser, formatter_class=HelpFormatter),
    )
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


def _one_line(message: object) -> str:
    return " ".join(str(message).split("\n"))


class _CtrlC:
    """Remembers a Ctrl-C while still raising KeyboardInterrupt: a library that turns the interrupt into its own
    error (a safetensors read cut short surfaces from diffusers as "Unable to load weights") is then still reported
    as the interruption, not as bad input."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum: int, frame: object) -> None:
        self.seen = True
        signal.default_int_handler(signum, frame)


def main(argv: Sequence[str] | None = None) -> int:
    prog = "ecad"
    ctrl_c = _CtrlC()
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, ctrl_c)
    try:
        args = build_parser().parse_args(argv)
        prog = f"ecad {args.command}"
        _configure_logging(args.verbose)
        code = int(args.run(args) or 0)
        sys.stdout.flush()
        return code
    except UsageError as err:
        print(f"{err.prog}: error: {_one_line(err)} (see `{err.prog} --help`)", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        return _interrupted(prog)
    except USER_ERRORS as err:
        if ctrl_c.seen:
            return _interrupted(prog)
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    finally:
        if signal.getsignal(signal.SIGINT) is ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupted(prog: str) -> int:
    print(f"{prog}: interrupted", file=sys.stderr)
    return 130


def entry() -> None:
    """The ``ecad`` program: :func:`main`, then exit with its code. After Ctrl-C the process ends with ``os._exit``
    once its output is flushed: CPython remembers a KeyboardInterrupt that passed through C code running Python
    (``PyRun_String``, as some extensions do) even when ecad handled it, and would otherwise end the process by
    SIGINT instead of with 130."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
