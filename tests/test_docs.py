"""The documentation cannot go stale: every Python and shell block of the README and the guides runs, in order, in a
temporary directory on tiny-shapes; a block marked ``<!-- docs-test: gpu -->`` (or ``network``, ``slow``,
``parse-only``) is parsed instead and every ecad name, subcommand and option in it must exist. The generated pages
(CLI reference, benchmark pages, headline tables) equal a fresh generation, the README stays short, and no page
speaks of the project's bookkeeping."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "docs" / "index.md",
    ROOT / "docs" / "getting-started.md",
    *sorted((ROOT / "docs" / "guides").glob("*.md")),
    ROOT / "docs" / "tiny_shapes.md",
]
CHECK_ONLY = {"gpu", "network", "slow", "parse-only"}
# The README's install commands (CI runs them itself, in a fresh venv).
INSTALL_MARKERS = {"main-command", "test-command"}
MARKER = re.compile(r"<!--\s*(?:docs-test:\s*)?([\w-]+)\s*-->")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    runs: bool

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The ``python`` and ``bash`` fenced blocks of a page, each marked to run or only to be checked."""
    found, lines, marker = [], page.read_text().splitlines(), None
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^```(\w+)", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence.group(1) in ("python", "bash"):
                runs = marker not in CHECK_ONLY | INSTALL_MARKERS
                found.append(Block(page, i + 1, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n", runs))
            marker, i = None, end + 1
            continue
        if line.strip():
            match = MARKER.fullmatch(line.strip())
            marker = match.group(1) if match else None
        i += 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]


def test_every_page_has_examples_and_markers_are_known():
    assert all(any(b.page == page for b in ALL) for page in PAGES if page.name != "index.md"), (
        "a page lost its examples"
    )
    for page in PAGES:
        for marker in MARKER.findall(page.read_text()):
            assert marker in CHECK_ONLY | INSTALL_MARKERS, f"{page.name}: unknown docs-test marker {marker!r}"


# ------------------------------------------------------------------------------------------------ checked blocks
def ecad_commands(code: str) -> list[list[str]]:
    """Each ``ecad ...`` command line of a shell block (continuations joined; pipes, ``&&``, ``$( )`` split)."""
    text = code.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.split(" #")[0].replace('"', " ").replace("'", " ")  # only the command and its --options matter
        for part in re.split(r"&&|\|\||;|\||\$\(|\)", line):
            words = part.split()
            if words and words[0] == "ecad":
                commands.append(words[1:])
    return commands


def check_ecad_command(argv: list[str], where: Block) -> None:
    import argparse

    from ecad.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert argv and argv[0] in sub.choices, f"{where}: `ecad {' '.join(argv)}`: no such subcommand"
    known = {s for a in sub.choices[argv[0]]._actions for s in a.option_strings}
    for word in argv[1:]:
        option = word.split("=")[0]
        if option.startswith("--"):
            assert option in known, f"{where}: `ecad {argv[0]}` has no option {option}"


def resolve(dotted: str) -> None:
    """Import ``ecad.a.b...`` as far as modules go, then follow attributes."""
    import importlib

    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: i + 1]))


def ecad_names(tree: ast.AST) -> set[str]:
    """Every ``ecad.x.y`` attribute chain and ``from ecad.x import y`` name of a parsed block."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ecad":
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Attribute):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "ecad":
                names.add(".".join(["ecad", *reversed(chain)]))
    return names


@pytest.mark.parametrize("block", ALL, ids=str)
def test_block_parses_and_names_exist(block):
    """Every block, run or not: valid syntax, and the ecad names, subcommands and options it uses exist."""
    if block.language == "python":
        tree = ast.parse(block.code, filename=str(block))
        for name in sorted(ecad_names(tree)):
            resolve(name)
    else:
        done = subprocess.run(["bash", "-n"], input=block.code, text=True, capture_output=True)
        assert done.returncode == 0, f"{block}: {done.stderr}"
        for argv in ecad_commands(block.code):
            check_ecad_command(argv, block)


# --------------------------------------------------------------------------------------------------- run blocks
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """One ``ecad demo`` run that every page's examples share, and the schedule the guides call my_schedule.json."""
    where = tmp_path_factory.mktemp("docs")
    done = subprocess.run(
        ["ecad", "demo", "--out", "ecad-demo", "--samples", "1"],
        cwd=where,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "ecad-demo"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    return env


RUN_PAGES = [page for page in PAGES if any(b.runs and b.page == page for b in ALL)]


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page, demo_run, tmp_path):
    """A page's runnable blocks, in order, in a fresh directory that holds the shared demo run (``ecad-demo``) and
    the schedule ``ecad front ecad-demo --suggested`` picks (``my_schedule.json``)."""
    (tmp_path / "ecad-demo").symlink_to(demo_run, target_is_directory=True)
    suggested = subprocess.run(
        ["ecad", "front", "ecad-demo", "--suggested"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shutil.copy(tmp_path / suggested, tmp_path / "my_schedule.json")
    for block in (b for b in ALL if b.page == page and b.runs):
        command = (
            [sys.executable, "-c", block.code]
            if block.language == "python"
            else ["bash", "-euo", "pipefail", "-c", block.code]
        )
        done = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{block} failed:\n{block.code}\n{done.stderr[-3000:]}"


# ---------------------------------------------------------------------------------------------- generated pages
def test_generated_pages_equal_a_fresh_generation():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_pages.py"), "--check"], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_readme_is_short_and_keeps_the_ci_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for marker in INSTALL_MARKERS:
        assert re.search(rf"<!-- {marker} -->\n```bash\n.+\n```", text), marker


BOOKKEEPING = re.compile(
    r"\bissues? #?\d+|(?<![\w.])#\d+\b(?!-)|\btargets? (?:of|met|not)|\b(?:not|target) met\b", re.IGNORECASE
)


def test_no_page_speaks_of_the_projects_bookkeeping():
    """Issue numbers and "target met / not met" verdicts are the project's notes, not the user's."""
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in pages for m in BOOKKEEPING.finditer(p.read_text())]
    assert not found, found


@pytest.mark.skipif(
    shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
    reason="mkdocs is not installed (pip install -e '.[docs]')",
)
def test_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=_env()["PATH"])
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**_env(), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
