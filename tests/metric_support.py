"""For the tests of the metric ports: the seeded inputs the equivalence scripts used (scripts/metric_fixtures.py),
the results they recorded (benchmarks/results), and a local hub cache to load models from."""

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from metric_fixtures import bert_vocab, put_in_hub_cache, seeded_images, seeded_state_dict  # noqa: E402

__all__ = [
    "bert_vocab",
    "cache_folder",
    "put_in_hub_cache",
    "recorded",
    "seeded_images",
    "seeded_state_dict",
    "threads",
]


def recorded(name: str) -> dict:
    """A result an equivalence script committed to benchmarks/results."""
    return json.loads((ROOT / "benchmarks" / "results" / name).read_text())


def cache_folder(cache_dir: Path, repo: str, folder: Path) -> None:
    """Put every file of a saved model or processor folder into the hub cache as ``repo``."""
    put_in_hub_cache(cache_dir, repo, {p.name: p for p in folder.iterdir() if p.is_file()})


@contextmanager
def threads(count: int):
    """Full-size models are compute-bound: give them both cores (the suite runs tiny models on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
