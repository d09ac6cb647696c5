"""Search on a local Ray instance with 2 CPU workers: same front as in-process, and survives a killed worker (with
``--strategy race``: both stages through the executor, the same decisions)."""

import dataclasses
import json
import os
import signal
import sqlite3
import threading
import time

import pytest
from tiny_pipelines import tiny_pixart_pipeline

from ecad.search import SearchConfig, schedule_key, search

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ecad[ray]')")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "pipe"
    tiny_pixart_pipeline(num_layers=3, seed=2).save_pretrained(path)
    return SearchConfig(
        model=str(path),
        prompts=["a w1 w2", "w3 w4", "w5"],
        population=6,
        generations=3,
        images_per_prompt=2,
        num_steps=6,
        height=16,
        width=16,
        batch_size=3,
        device="cpu",
        strategy="paper",
    )


def call_name(schedule, rows=None):
    """What an evaluation call is logged as: the schedule's key, and the first row of a racing stage."""
    return schedule_key(schedule) + ("" if rows is None else f"@{rows.start}")


def local_run(config, out):
    """The in-process run's front, the evaluations it made (each exactly once) and its stored decisions."""
    import torch

    from ecad.search import CandidateEvaluator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker with one CPU: identical arithmetic
    calls, original = [], CandidateEvaluator.__call__
    CandidateEvaluator.__call__ = lambda self, schedule, *rows: (
        calls.append(call_name(schedule, *rows)) or original(self, schedule, *rows)
    )
    try:
        search(config, out, progress=False)
    finally:
        torch.set_num_threads(threads)
        CandidateEvaluator.__call__ = original
    assert len(calls) == len(set(calls)) and {c.partition("@")[0] for c in calls} == stored_keys(out)
    return json.loads((out / "front.json").read_text()), set(calls), decisions(out)


@pytest.fixture(scope="module")
def local_front(config, tmp_path_factory):
    return local_run(config, tmp_path_factory.mktemp("local") / "run")


@pytest.fixture(scope="module")
def local_race(config, tmp_path_factory):
    return local_run(dataclasses.replace(config, strategy="race"), tmp_path_factory.mktemp("race") / "run")


def decisions(out):
    """Each stored schedule's quality, racing marker and rows scored."""
    with sqlite3.connect(out / "evaluations.sqlite", timeout=1) as db:
        rows = db.execute("SELECT key, quality, metrics FROM evaluations").fetchall()
    return {key: (quality, json.loads(m).get("race"), json.loads(m).get("rows_scored")) for key, quality, m in rows}


def stored_keys(out):
    try:
        with sqlite3.connect(out / "evaluations.sqlite", timeout=1) as db:
            return {k for (k,) in db.execute("SELECT key FROM evaluations")}
    except sqlite3.Error:  # not created yet
        return set()


def count(out):
    return len(stored_keys(out))


def counted_workers(monkeypatch, log):
    """Ray actors that append "pid key" to ``log`` when an evaluation starts (the class travels to the workers by
    value, being local)."""
    import ecad.search.ray_executor as ray_executor

    class CountedWorker(ray_executor.EvaluationWorker):
        def evaluate(self, schedule, rows=None):
            from ecad import CacheSchedule

            with open(log, "a") as f:
                stage = "" if rows is None else f"@{rows.start}"  # as call_name (this module is not on a worker's path)
                f.write(f"{os.getpid()} {schedule_key(CacheSchedule.from_dict(schedule))}{stage}\n")
            return super().evaluate(schedule, rows)

    monkeypatch.setattr(ray_executor, "EvaluationWorker", CountedWorker)


def evaluation_log(log):
    return [tuple(line.split()) for line in log.read_text().splitlines()]


def test_ray_gives_the_same_front_as_local(ray_cluster, config, local_front, tmp_path, monkeypatch):
    log = tmp_path / "evaluations.log"
    counted_workers(monkeypatch, log)
    result = search(config, tmp_path / "ray", progress=False, executor="ray", workers=2)
    assert json.loads((tmp_path / "ray" / "front.json").read_text()) == local_front[0]
    calls = evaluation_log(log)
    keys = [key for _, key in calls]
    assert len(keys) == len(set(keys)) == result.evaluations and set(keys) == local_front[1]
    assert len({pid for pid, _ in calls}) == 2  # both workers evaluated


def test_a_killed_worker_does_not_lose_or_double_count(ray_cluster, config, local_race, tmp_path, monkeypatch):
    """With --strategy race: each new candidate is scored on 2 of the 6 rows, then on the other 4 unless rejected."""
    from ecad.search.ray_executor import RayExecutor

    log = tmp_path / "evaluations.log"
    counted_workers(monkeypatch, log)
    out = tmp_path / "ray-kill"
    killed = {}
    original_init = RayExecutor.__init__

    def init_and_watch(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        victim = ray.get(self.workers[-1].pid.remote())

        def watch():
            deadline = time.time() + 120
            while time.time() < deadline:
                if count(out) >= 8:  # inside generation 1
                    os.kill(victim, signal.SIGKILL)
                    killed["pid"] = victim
                    return
                time.sleep(0.01)

        threading.Thread(target=watch, daemon=True).start()

    RayExecutor.__init__ = init_and_watch
    try:
        result = search(dataclasses.replace(config, strategy="race"), out, progress=False, executor="ray", workers=2)
    finally:
        RayExecutor.__init__ = original_init
    assert killed, "the worker was never killed"
    assert json.loads((out / "front.json").read_text()) == local_race[0]
    assert decisions(out) == local_race[2] and {rows for *_, rows in local_race[2].values()} == {2, 6}
    # Each stage of each schedule evaluated once, except the one the victim held when it died: started there,
    # finished by the survivor.
    calls = evaluation_log(log)
    victim = [key for pid, key in calls if int(pid) == killed["pid"]]
    survivor = [key for pid, key in calls if int(pid) != killed["pid"]]
    assert victim and len(victim) == len(set(victim)) and len(survivor) == len(set(survivor))
    assert set(victim) & set(survivor) <= {victim[-1]}
    assert set(victim) | set(survivor) == local_race[1] and result.evaluations == len(stored_keys(out))


def test_missing_ray_says_how_to_install(monkeypatch, config, tmp_path):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(
        builtins,
        "__import__",
        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "ray" else real_import(name, *a, **k),
    )
    with pytest.raises(ImportError, match=r"pip install 'ecad\[ray\]'"):
        search(config, tmp_path / "no-ray", progress=False, executor="ray")
