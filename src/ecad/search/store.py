"""The evaluation store: every evaluated schedule with its objectives, in SQLite, committed one by one.

Each evaluation is committed in its own transaction (WAL journal, synchronous=FULL), so a crash or ``kill -9``
loses at most the candidate in flight, and nothing is ever written twice: the key is the schedule's effective bits.
The store is the search's memo across generations and resumes.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters import ModelLayout
from ..schedule import CacheSchedule, ScheduleError

SCHEMA_VERSION = 1
_COLUMNS = (
    "key TEXT PRIMARY KEY, quality REAL NOT NULL, cost REAL NOT NULL, metrics TEXT NOT NULL, created REAL NOT NULL"
)
_COLUMN_NAMES = tuple(column.split()[0] for column in _COLUMNS.split(", "))


class CorruptRunError(ValueError):
    """A run directory's files are damaged or belong to something else."""


@dataclass(frozen=True)
class Evaluation:
    key: str
    quality: float
    cost: float
    metrics: dict[str, Any]


def _unpacked(packed: str, shape: tuple[int, ...]) -> np.ndarray:
    data = np.frombuffer(bytes.fromhex(packed), dtype=np.uint8)
    if shape[0] < 1 or data.size != -(-int(np.prod(shape)) // 8):
        raise ValueError("its length does not fit")
    return np.unpackbits(data, count=int(np.prod(shape))).reshape(shape).astype(bool)


def schedule_from_key(key: str, layout: ModelLayout) -> CacheSchedule:
    """The effective schedule a key stands for; the key alone lacks the layout's names and shape."""
    steps, _, rest = key.partition(":")
    packed, _, forecast = rest.partition(":f")
    try:
        shape = (int(steps), *layout.exists.shape)
        bits = _unpacked(packed, shape)
        order, _, forecast_packed = forecast.partition(":")
        forecasts = _unpacked(forecast_packed, shape) if forecast else None
        template = layout.full_schedule(shape[0])
        if forecast:
            template = dataclasses.replace(template, forecast_order=int(order))
        return template.like(bits, forecasts)
    except (ValueError, ScheduleError):
        raise CorruptRunError(
            f"schedule key {key[:40]!r} is not a key of a {len(layout.block_names)}-block schedule of this run."
        ) from None


def _read_only(path: Path) -> sqlite3.Connection:
    """``path`` opened to be read, leaving its folder as it was: SQLite opens a WAL database (an ecad store) read-only
    by creating its -shm and -wal files, unless told the file is immutable, which holds while no -wal file beside it
    has commits to read (a running search keeps one)."""
    immutable = "" if path.with_name(path.name + "-wal").exists() else "&immutable=1"
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro{immutable}", uri=True)


class EvaluationStore:
    """The SQLite store of a run; a database that is not ecad's is refused before anything is written into it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        existing = self.check(self.path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            if not existing:
                self.db.execute(f"CREATE TABLE IF NOT EXISTS evaluations ({_COLUMNS})")
                self.db.execute("CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self.db.execute("INSERT OR IGNORE INTO info VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as err:
            raise CorruptRunError(f"{self.path} is not a readable ecad evaluation store ({err}).") from None

    @staticmethod
    def check(path: Path) -> bool:
        """Whether ``path`` holds an ecad store (``False``: absent or an empty file, a new store goes there); anything
        else raises, read only."""
        if not path.exists() or (path.is_file() and path.stat().st_size == 0):
            return False
        fix = "move it away or use another --out; ecad does not write into it"
        try:
            db = _read_only(path)
            try:
                tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables != {"evaluations", "info"}:
                    raise CorruptRunError(
                        f"{path} is an SQLite database of something else (tables "
                        f"{sorted(tables)[:5]}), not an ecad evaluation store; {fix}."
                    )
                row = db.execute("SELECT value FROM info WHERE name = 'schema'").fetchone()
                columns = [name for _, name, *_ in db.execute("PRAGMA table_info(evaluations)")]
            finally:
                db.close()
        except sqlite3.Error as err:
            raise CorruptRunError(f"{path} is not a readable ecad evaluation store ({err}); {fix}.") from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise CorruptRunError(
                f"{path} has store schema {row[0] if row else 'none'}, this ecad reads {SCHEMA_VERSION}; {fix}."
            )
        if columns != list(_COLUMN_NAMES):
            raise CorruptRunError(
                f"{path}: its evaluations table has the columns {columns}, this ecad reads "
                f"{list(_COLUMN_NAMES)}; {fix}."
            )
        return True

    @classmethod
    def count(cls, path: Path) -> int:
        """Evaluations in the store at ``path`` (0 when there is none), read only."""
        if not cls.check(path):
            return 0
        db = _read_only(path)
        try:
            return db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        finally:
            db.close()

    def get(self, key: str) -> Evaluation | None:
        row = self.db.execute("SELECT quality, cost, metrics FROM evaluations WHERE key = ?", (key,)).fetchone()
        return None if row is None else Evaluation(key, row[0], row[1], json.loads(row[2]))

    def put(self, evaluation: Evaluation, replace: bool = False) -> None:
        """Store ``evaluation``; a key already stored is kept, unless ``replace`` (a raced candidate's first-stage
        evaluation, completed on the remaining rows)."""
        self.db.execute(
            f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO evaluations VALUES (?, ?, ?, ?, ?)",
            (evaluation.key, evaluation.quality, evaluation.cost, json.dumps(evaluation.metrics), time.time()),
        )

    def evaluations(self) -> list[Evaluation]:
        return [
            Evaluation(key, quality, cost, json.loads(metrics))
            for key, quality, cost, metrics in self.db.execute("SELECT key, quality, cost, metrics FROM evaluations")
        ]

    def objectives(self) -> list[tuple[float, float]]:
        """``(quality, cost)`` of every evaluation (its metrics left unread)."""
        return self.db.execute("SELECT quality, cost FROM evaluations").fetchall()

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def close(self) -> None:
        self.db.close()
