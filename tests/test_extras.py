"""Every optional extra of pyproject.toml installs beside the torch installed here (README command (1) installs
torch==2.13.0 first): nothing an extra asks for, directly or through its dependencies, needs another torch.

Resolved offline, from the metadata of the installed packages (the test environment has every extra's packages:
``ecad[test]`` includes ray). ``scripts/check_extras.py`` asks pip's resolver the same question against the registry
in a fresh environment.
"""

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Each pins one torch release: pip would replace the installed torch to satisfy it (and there is no torchvision
# build for the torch this project installs).
TORCH_BUILDS = {"torchvision", "torchaudio"}


def extras() -> dict[str, list[str]]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]


def torch_conflicts(requirements: list[str], torch_version: str) -> list[str]:
    """Why installing ``requirements`` would change torch, following installed packages' dependencies."""
    problems, seen, pending = [], set(), [(Requirement(r), "the extra") for r in requirements]
    while pending:
        requirement, via = pending.pop()
        name = canonicalize_name(requirement.name)
        if name == "torch":
            if not requirement.specifier.contains(torch_version, prereleases=True):
                problems.append(f"{via} asks for {requirement} (installed: torch {torch_version})")
            continue
        if name in TORCH_BUILDS:
            problems.append(f"{via} asks for {requirement}")
            continue
        key = (name, tuple(sorted(requirement.extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(
                f"{via} asks for {requirement}, which is not installed here, so it cannot be checked "
                "offline: add it to the test extra"
            )
            continue
        if not requirement.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{via} asks for {requirement}; installed {name} {dist.version} does not satisfy it")
        for text in dist.requires or []:
            child = Requirement(text)
            wanted = [{"extra": e} for e in requirement.extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in wanted):
                pending.append((child, f"{via} -> {dist.metadata['Name']} {dist.version}"))
    return problems


def test_no_extra_needs_another_torch():
    torch_version = metadata.version("torch")
    found = extras()
    assert {"image-reward", "pickscore", "clip", "fid", "ray", "test"} <= set(found)
    problems = {extra: torch_conflicts(requirements, torch_version) for extra, requirements in found.items()}
    assert not any(problems.values()), problems


def test_the_check_catches_a_dependency_that_pulls_another_torch():
    assert torch_conflicts(["torchvision>=0.20"], "2.13.0") == ["the extra asks for torchvision>=0.20"]
    assert torch_conflicts(["torch>=2.15"], "2.13.0") == ["the extra asks for torch>=2.15 (installed: torch 2.13.0)"]
    # through an installed package's own requirements, with their extras' markers: torchmetrics needs torch>=2.0
    # (met by the installed torch), its "image" extra also torchvision
    torch_version = metadata.version("torch")
    assert torch_conflicts(["torchmetrics"], torch_version) == []
    assert any("torchmetrics" in p and "asks for torch>=2.0.0" in p for p in torch_conflicts(["torchmetrics"], "1.13"))
    assert any(
        "torchmetrics" in p and "asks for torchvision" in p
        for p in torch_conflicts(["torchmetrics[image]"], torch_version)
    )
