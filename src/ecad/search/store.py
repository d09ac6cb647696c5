"""The evaluation store: every evaluated schedule with its objectives, in SQLite, committed one by one.

Each evaluation is committed in its own transaction (WAL journal, synchronous=FULL), so a crash or ``kill -9``
loses at most the candidate in flight, and nothing is ever written twice: the key is the schedule's effective bits.
The store is the search's memo across generations and resumes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters import ModelLayout
from ..schedule import CacheSchedule

SCHEMA_VERSION = 1


class CorruptRunError(ValueError):
    """A run directory's files are damaged or belong to something else."""


@dataclass(frozen=True)
class Evaluation:
    key: str
    quality: float
    cost: float
    metrics: dict[str, Any]


def schedule_key(schedule: CacheSchedule) -> str:
    """A stable identity for what a schedule runs: its effective bits, packed as hex."""
    bits = schedule.effective().numpy().reshape(-1)
    return f"{schedule.num_steps}:" + np.packbits(bits).tobytes().hex()


def schedule_from_key(key: str, layout: ModelLayout) -> CacheSchedule:
    """The effective schedule a key stands for; the key alone lacks the layout's names and shape."""
    steps, _, packed = key.partition(":")
    shape = (int(steps), *layout.exists.shape)
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(packed), dtype=np.uint8), count=int(np.prod(shape)))
    return layout.full_schedule(int(steps)).like(bits.reshape(shape).astype(bool))


class EvaluationStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS evaluations (key TEXT PRIMARY KEY, quality REAL NOT NULL, "
                "cost REAL NOT NULL, metrics TEXT NOT NULL, created REAL NOT NULL)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.db.execute("INSERT OR IGNORE INTO info VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            (version,) = self.db.execute("SELECT value FROM info WHERE name = 'schema'").fetchone()
        except sqlite3.DatabaseError as err:
            raise CorruptRunError(f"{self.path} is not a readable ecad evaluation store ({err}).") from None
        if version != str(SCHEMA_VERSION):
            raise CorruptRunError(f"{self.path} has store schema {version}, this ecad reads {SCHEMA_VERSION}.")

    def get(self, key: str) -> Evaluation | None:
        row = self.db.execute("SELECT quality, cost, metrics FROM evaluations WHERE key = ?", (key,)).fetchone()
        return None if row is None else Evaluation(key, row[0], row[1], json.loads(row[2]))

    def put(self, evaluation: Evaluation) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO evaluations VALUES (?, ?, ?, ?, ?)",
            (evaluation.key, evaluation.quality, evaluation.cost, json.dumps(evaluation.metrics), time.time()),
        )

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def close(self) -> None:
        self.db.close()
