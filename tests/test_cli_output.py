"""What the command line prints: only ecad's own lines, help with defaults, no torch for --help, quiet broken pipes."""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ecad import names
from ecad.cli import COMMANDS, HelpFormatter, build_parser

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"}
# An ecad log line, or a frame of the per-step bar `ecad generate` shows (tqdm redraws it with \r).
OWN = re.compile(r"^(INFO|WARNING) ecad[.\w]*: |^denoising: ")


def ecad(*args, stdout=subprocess.PIPE):
    return subprocess.run(
        [sys.executable, "-m", "ecad", *map(str, args)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        timeout=300,
    )


def foreign_lines(text):
    """Every printed line (or bar frame) that is not ecad's own."""
    return [line for line in re.split(r"[\r\n]+", text) if line.strip() and not OWN.match(line)]


def test_help_imports_neither_torch_nor_diffusers():
    code = (
        "import sys\nfrom ecad.cli import main\n"
        "for argv in (['--help'], *([c, '--help'] for c in sys.argv[1:])):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers', 'numpy'))\n"
        "print('HEAVY', heavy)\n"
    )
    commands = [c.__name__.rsplit(".", 1)[1] for c in COMMANDS]
    done = subprocess.run(
        [sys.executable, "-c", code, *("eval" if c == "evaluate" else c for c in commands)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("HEAVY []"), done.stdout[-500:]


@pytest.mark.slow
def test_help_and_show_print_no_third_party_warning(tmp_path):
    import torch

    from ecad.schedule import ModelLayout
    from ecad.schedule.heuristics import fora

    layout = ModelLayout(("0", "1"), ("attn1", "attn2", "ff"), torch.ones(2, 3, dtype=torch.bool))
    fora(layout, 6, 2).save(tmp_path / "fora.json")
    for args in (["--help"], ["demo", "--help"], ["show", tmp_path / "fora.json"]):
        done = ecad(*args)
        assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
    assert "fora-2: 6 steps x 2 blocks" in done.stdout


@pytest.mark.slow
def test_a_tiny_generate_prints_only_ecads_own_lines(tmp_path):
    done = ecad(
        "generate",
        "--model",
        "tiny-shapes",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--prompt",
        "a small red circle above a large blue square",
        "--out",
        tmp_path / "x.png",
    )
    assert done.returncode == 0, done.stderr
    assert foreign_lines(done.stderr) == [] and done.stdout.strip() == str(tmp_path / "x.png")
    assert "denoising: " in done.stderr  # per-step progress of the one image
    assert "loading pipeline tiny-shapes" in done.stderr and "generated in" in done.stderr


def test_every_subcommand_shows_its_defaults():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        assert sub.formatter_class is HelpFormatter, name  # one formatter, set in one place

    def help_of(name):  # one line: argparse wraps at spaces and after hyphens
        return " ".join(re.sub(r"-\n\s*", "-", subparsers.choices[name].format_help()).split())

    search = help_of("search")
    assert "(default: 72)" in search and "(default: fidelity)" in search and "(default: None)" not in search
    assert all(prompt_set in search for prompt_set in names.PROMPT_SETS)
    evaluate = help_of("eval")
    assert "(default: tiny-reward on tiny-shapes, else fidelity)" in evaluate and "['fidelity']" not in evaluate
    demo = help_of("demo")
    assert "--prompts N" in demo and "a count, not a file" in demo


def test_the_option_names_match_what_implements_them():
    """Registries the parser cannot import (they load torch) against the names it offers; the conventions, costs and
    dtypes are taken from ecad.names by the modules that implement them."""
    from ecad.cost.table import COUNTED
    from ecad.metrics import METRICS
    from ecad.models.prompts import BUILTIN
    from ecad.peers import PEERS
    from ecad.search import EXECUTORS

    assert set(names.METRIC_NAMES) == set(METRICS)
    assert tuple(EXECUTORS) == names.EXECUTOR_NAMES
    assert tuple(BUILTIN) == names.PROMPT_SETS
    assert tuple(PEERS) == names.PEER_NAMES
    assert set(names.CONVENTIONS) <= set(COUNTED)  # each convention says what it counts


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(tiny_run):
    """`ecad front RUN --json | head`: the reader goes away; no "Broken pipe" error, exit 0."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = ecad("front", tiny_run, "--json", stdout=write)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_front_suggested_prints_only_the_suggested_path(tiny_run):
    from ecad.cli.front import front_lines

    _, rows = front_lines(tiny_run, 5.0)
    done = ecad("front", tiny_run, "--suggested")
    assert done.returncode == 0 and done.stdout == next(r["path"] for r in rows if r["suggested"]) + "\n"


@pytest.mark.parametrize("command", ["front", "demo"])
def test_front_listing_names_files_order_and_the_command(tiny_run, command, capsys):
    from ecad.cli.front import front_lines

    lines, rows = front_lines(tiny_run, 5.0)
    text = "\n".join(lines)
    assert "front/000.json is the cheapest schedule (fastest, lowest quality)" in text
    assert all(str(tiny_run / f"front/{i:03d}.json") in text for i in range(len(rows)))
    assert sum(r["suggested"] for r in rows) == 1 and "* suggested:" in text and "use it: ecad generate" in text
    assert all(r["command"].startswith("ecad generate --model ") for r in rows)
