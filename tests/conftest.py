import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PAPER_SCHEDULES = SHARED / "paper" / "schedules"


@pytest.fixture
def paper_schedules() -> Path:
    if not PAPER_SCHEDULES.is_dir():
        pytest.skip(f"the paper's published schedules are not at {PAPER_SCHEDULES} (../shared is absent)")
    return PAPER_SCHEDULES
