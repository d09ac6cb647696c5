"""Shared by the benchmark scripts: environment facts and appending JSON results."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import diffusers
import torch

RESULTS = Path(__file__).parent / "results"


def device_name(device: str = "cpu") -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> dict[str, Any]:
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


def emit(name: str, result: dict[str, Any], save: bool) -> None:
    """Print the result as one JSON object; with ``save``, append it to benchmarks/results/<name>.jsonl."""
    text = json.dumps(result)
    print(text)
    if save:
        RESULTS.mkdir(exist_ok=True)
        with open(RESULTS / f"{name}.jsonl", "a") as handle:
            handle.write(text + "\n")
