"""Search on a local Ray instance with 2 CPU workers: same front as in-process, and survives a killed worker."""

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


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "pipe"
    tiny_pixart_pipeline(num_layers=3, seed=2).save_pretrained(path)
    return SearchConfig(model=str(path), prompts=["a w1 w2", "w3 w4", "w5"], population=6, generations=3,
                        images_per_prompt=2, num_steps=6, height=16, width=16, batch_size=3, device="cpu")


@pytest.fixture(scope="module")
def local_front(config, tmp_path_factory):
    """The in-process run's front and the keys it evaluated (each exactly once)."""
    import torch

    from ecad.search import CandidateEvaluator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker with one CPU: identical arithmetic
    calls, original = [], CandidateEvaluator.__call__
    CandidateEvaluator.__call__ = (lambda self, schedule, *rows: calls.append(schedule_key(schedule))
                                   or original(self, schedule, *rows))
    try:
        out = tmp_path_factory.mktemp("local") / "run"
        search(config, out, progress=False)
    finally:
        torch.set_num_threads(threads)
        CandidateEvaluator.__call__ = original
    assert len(calls) == len(set(calls)) and set(calls) == stored_keys(out)
    return json.loads((out / "front.json").read_text()), set(calls)


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
        def evaluate(self, schedule):
            from ecad import CacheSchedule

            with open(log, "a") as f:
                f.write(f"{os.getpid()} {schedule_key(CacheSchedule.from_dict(schedule))}\n")
            return super().evaluate(schedule)

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


def test_a_killed_worker_does_not_lose_or_double_count(ray_cluster, config, local_front, tmp_path, monkeypatch):
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
        result = search(config, out, progress=False, executor="ray", workers=2)
    finally:
        RayExecutor.__init__ = original_init
    assert killed, "the worker was never killed"
    assert json.loads((out / "front.json").read_text()) == local_front[0]
    # Each schedule evaluated once, except the candidate the victim held when it died: started there, finished
    # by the survivor.
    calls = evaluation_log(log)
    victim = [key for pid, key in calls if int(pid) == killed["pid"]]
    survivor = [key for pid, key in calls if int(pid) != killed["pid"]]
    assert victim and len(victim) == len(set(victim)) and len(survivor) == len(set(survivor))
    assert set(victim) & set(survivor) <= {victim[-1]}
    assert set(victim) | set(survivor) == stored_keys(out) == local_front[1] and result.evaluations == len(local_front[1])


def test_missing_ray_says_how_to_install(monkeypatch, config, tmp_path):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "ray"
                        else real_import(name, *a, **k))
    with pytest.raises(ImportError, match=r"pip install 'ecad\[ray\]'"):
        search(config, tmp_path / "no-ray", progress=False, executor="ray")
