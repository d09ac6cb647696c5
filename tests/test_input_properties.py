"""Property-based tests (Hypothesis) of the two schedule formats and the prompt loader: random and mutated files
either load to something that round-trips or raise ecad's own error, each within a time limit."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ecad import CacheSchedule, ScheduleError
from ecad.models.prompts import PromptError, load_prompts

# Deterministic (the same examples every run), no example database written into the repository; every example must
# finish within the deadline, and the whole module within its timeout.
SETTINGS = settings(
    max_examples=80, deadline=2000, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
pytestmark = pytest.mark.timeout(120)

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=5)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
RESERVED = {"name", "macs", "paper", "resampled_from_steps", "source_format"}


@st.composite
def schedules(draw: st.DrawFn) -> CacheSchedule:
    steps, blocks = draw(st.integers(1, 7)), draw(st.integers(1, 4))
    components = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    block_names = draw(st.lists(names, min_size=blocks, max_size=blocks, unique=True))
    cells = blocks * len(components)
    exists = np.array(draw(st.lists(st.booleans(), min_size=cells, max_size=cells)), dtype=bool)
    exists[draw(st.integers(0, cells - 1))] = True
    exists = exists.reshape(blocks, len(components))
    bits = np.array(draw(st.lists(st.booleans(), min_size=steps * cells, max_size=steps * cells)), dtype=bool)
    metadata = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in RESERVED), json_values, max_size=3))
    return CacheSchedule.from_array(
        bits.reshape(steps, blocks, len(components)) & exists, block_names, components, exists, metadata
    )


def _load(directory: str, content: str | bytes) -> CacheSchedule | None:
    path = Path(directory) / "schedule.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    try:
        schedule = CacheSchedule.load(path)
    except ScheduleError as err:
        assert str(path) in str(err) and "\n" not in str(err), err  # one line that names the file
        event("refused")
        return None
    event("loaded")
    return schedule


def _round_trips(schedule: CacheSchedule, directory: str) -> None:
    path = Path(directory) / "again.json"
    schedule.save(path)
    again = CacheSchedule.load(path)
    assert again == schedule and again.metadata == schedule.metadata
    assert again.to_paper_dict()["cache_schedule"]["schedule"] == schedule.to_paper_dict()["cache_schedule"]["schedule"]


@SETTINGS
@given(schedules())
def test_valid_schedules_round_trip_in_both_formats(schedule):
    with TemporaryDirectory() as tmp:
        loaded = _load(tmp, json.dumps(schedule.to_dict()))
        assert loaded == schedule and loaded.metadata == schedule.metadata
        paper = schedule.to_paper_dict()
        from_paper = _load(tmp, json.dumps(paper))
        assert from_paper is not None
        assert torch_equal_bits(from_paper, schedule)
        assert from_paper.to_paper_dict()["cache_schedule"]["schedule"] == paper["cache_schedule"]["schedule"]


def torch_equal_bits(loaded: CacheSchedule, original: CacheSchedule) -> bool:
    """Same bits per (block, component) name. The paper format lists components in the order its first step shows
    them and cannot hold a component that no block has."""
    if loaded.block_names != original.block_names:
        return False
    for c, name in enumerate(original.component_names):
        if name not in loaded.component_names:
            if original.exists[:, c].any():
                return False
            continue
        i = loaded.component_names.index(name)
        if not (
            torch.equal(loaded.recompute[:, :, i], original.recompute[:, :, c])
            and torch.equal(loaded.exists[:, i], original.exists[:, c])
        ):
            return False
    return True


def _mutate(data: st.DataObject, value, depth: int = 0):
    """One random change somewhere in a JSON value: replace, delete or add a field, or recurse."""
    containers = isinstance(value, (dict, list)) and len(value) > 0
    if containers and depth < 6 and data.draw(st.integers(0, 3)) > 0:
        key = data.draw(st.sampled_from(sorted(value) if isinstance(value, dict) else list(range(len(value)))))
        action = data.draw(st.sampled_from(["recurse", "recurse", "delete", "add"]))
        copy = dict(value) if isinstance(value, dict) else list(value)
        if action == "delete":
            del copy[key]
        elif action == "add" and isinstance(copy, dict):
            copy[data.draw(st.text(max_size=4))] = data.draw(json_values)
        else:
            copy[key] = _mutate(data, copy[key], depth + 1)
        return copy
    return data.draw(
        st.one_of(
            json_values,
            st.sampled_from([10**12, 10**15, -5, 0, 1e15, 1e12, 2.5, "false", "true", None, [], {}]),
            st.text(alphabet="01x2 ", max_size=8),
        )
    )


@SETTINGS
@given(schedules(), st.booleans(), st.data())
def test_mutated_schedule_files_load_and_round_trip_or_raise_schedule_error(schedule, paper, data):
    document = schedule.to_paper_dict() if paper else schedule.to_dict()
    mutated = _mutate(data, document)
    with TemporaryDirectory() as tmp:
        loaded = _load(tmp, json.dumps(mutated))
        if loaded is not None:
            _round_trips(loaded, tmp)


@SETTINGS
@given(schedules(), st.data())
def test_damaged_schedule_text_loads_and_round_trips_or_raises_schedule_error(schedule, data):
    text = json.dumps(schedule.to_dict())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        text = (
            text[:at]
            + data.draw(st.sampled_from(["", "0", "1", "Infinity", "NaN", '"', "{", "]", "1e12", "-"]))
            + text[at + cut :]
        )
    with TemporaryDirectory() as tmp:
        loaded = _load(tmp, text)
        if loaded is not None:
            _round_trips(loaded, tmp)


@SETTINGS
@given(st.binary(max_size=200) | json_values.map(json.dumps))
def test_random_files_load_or_raise_schedule_error(content):
    with TemporaryDirectory() as tmp:
        loaded = _load(tmp, content)
        if loaded is not None:
            _round_trips(loaded, tmp)


# ---------------------------------------------------------------------- prompt files
prompt_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Zl", "Zp", "Cc"]), max_size=20)
prompt_lists = st.lists(prompt_text, min_size=1, max_size=6).filter(lambda ps: any(p.strip() for p in ps))


def _write_prompts(directory: str, suffix: str, prompts: list[str], bom: bool) -> Path:
    path = Path(directory) / f"prompts{suffix}"
    if suffix == ".json":
        content = json.dumps(prompts if len(prompts) % 2 else [{"prompt": p} for p in prompts])
    elif suffix in (".csv", ".tsv"):
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, delimiter="," if suffix == ".csv" else "\t")
        writer.writerow(["id", "prompt"])
        writer.writerows([i, p] for i, p in enumerate(prompts))
        content = buffer.getvalue()
    else:
        content = "\n".join(prompts)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + content.encode("utf-8"))
    return path


@SETTINGS
@given(prompt_lists, st.sampled_from([".txt", ".json", ".csv", ".tsv"]), st.booleans())
def test_prompt_files_round_trip_in_every_format(prompts, suffix, bom):
    with TemporaryDirectory() as tmp:
        path = _write_prompts(tmp, suffix, prompts, bom)
        assert load_prompts(str(path)) == [p.strip() for p in prompts if p.strip()]


@SETTINGS
@given(
    st.binary(max_size=120) | json_values.map(lambda v: json.dumps(v).encode()) | st.text(max_size=60).map(str.encode),
    st.sampled_from([".txt", ".json", ".csv", ".tsv"]),
)
def test_random_prompt_files_load_or_raise_prompt_error(content, suffix):
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / f"p{suffix}"
        path.write_bytes(content)
        try:
            prompts = load_prompts(str(path))
        except PromptError as err:
            assert str(path) in str(err) and "\n" not in str(err), err
            return
        assert prompts and all(isinstance(p, str) and p == p.strip() and p for p in prompts)
