import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
# Tiny models are overhead-bound: one thread is as fast, and steady when the machine is busy. OMP_NUM_THREADS
# chooses another count (CI runs the tests that make decisions under a second one: they must not depend on it).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PAPER_SCHEDULES = SHARED / "paper" / "schedules"


@pytest.fixture
def paper_schedules() -> Path:
    if not PAPER_SCHEDULES.is_dir():
        pytest.skip(f"the paper's published schedules are not at {PAPER_SCHEDULES} (../shared is absent)")
    return PAPER_SCHEDULES


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny PixArt pipeline saved to disk, as a user's model folder."""
    from tiny_pipelines import tiny_pixart_pipeline

    path = tmp_path_factory.mktemp("model") / "pipe"
    tiny_pixart_pipeline(num_layers=3, seed=1).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_model_dir, tmp_path_factory) -> Path:
    """A finished tiny search run directory (population 4, 3 generations, 6 steps, 16x16 px, the paper's search)."""
    from ecad.search import SearchConfig, search

    out = tmp_path_factory.mktemp("run") / "run"
    config = SearchConfig(
        model=str(tiny_model_dir),
        prompts=["a w1 w2", "w3 w4"],
        population=4,
        generations=3,
        num_steps=6,
        height=16,
        width=16,
        batch_size=4,
        device="cpu",
        strategy="paper",
    )
    search(config, out, progress=False)
    return out
