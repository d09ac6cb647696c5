"""Every extra installs on top of README command (1) without replacing torch, asked of pip's resolver and the registry.

Run it with the python of a fresh environment where only ``pip install torch==2.13.0`` ran (README command (1)
before ``pip install .``):

    python3 -m venv /work/tmp/extras-venv && /work/tmp/extras-venv/bin/pip install torch==2.13.0
    python scripts/check_extras.py --python /work/tmp/extras-venv/bin/python

For the project alone and with each extra of pyproject.toml, ``pip install --dry-run --report`` says what pip would
install there; the check fails when that includes torch, a torch build (torchvision, torchaudio) or NVIDIA's CUDA
wheels. It needs the registry; ``tests/test_extras.py`` checks the same offline from installed metadata.
Writes benchmarks/results/extras.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "extras.json"
FORBIDDEN = ("torch", "torchvision", "torchaudio", "triton")


def would_install(python: str, target: str) -> list[str]:
    """``name==version`` of every distribution pip would install for ``target`` into ``python``'s environment."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--dry-run", "--report", str(report), target],
            cwd=ROOT,
            check=True,
        )
        items = json.loads(report.read_text())["install"]
    return sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items)


def replaces_torch(packages: list[str]) -> list[str]:
    names = [p.split("==")[0].lower().replace("_", "-") for p in packages]
    return [p for p, n in zip(packages, names, strict=True) if n in FORBIDDEN or n.startswith("nvidia-")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="python of a fresh environment with torch==2.13.0 only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch = subprocess.run(
        [args.python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    results = {}
    for extra in ["", *extras]:
        packages = would_install(args.python, f".[{extra}]" if extra else ".")
        results[extra or "(none)"] = {"would_install": packages, "replaces_torch": replaces_torch(packages)}
        print(
            f"{extra or '(none)'}: {len(packages)} packages, torch replaced by: "
            f"{results[extra or '(none)']['replaces_torch'] or 'nothing'}",
            file=sys.stderr,
        )
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "installed_torch": torch,
        "extras": results,
        "ok": not any(r["replaces_torch"] for r in results.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"installed_torch": torch, "ok": result["ok"]}))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
