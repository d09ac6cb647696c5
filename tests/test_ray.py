"""Search on a local Ray instance with 2 CPU workers: same front as in-process, and survives a killed worker."""

import json
import os
import signal
import sqlite3
import threading
import time

import pytest
from tiny_pipelines import tiny_pixart_pipeline

from ecad.search import SearchConfig, search

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
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker with one CPU: identical arithmetic
    try:
        out = tmp_path_factory.mktemp("local") / "run"
        search(config, out, progress=False)
    finally:
        torch.set_num_threads(threads)
    return json.loads((out / "front.json").read_text()), count(out)


def count(out):
    try:
        with sqlite3.connect(out / "evaluations.sqlite", timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_ray_gives_the_same_front_as_local(ray_cluster, config, local_front, tmp_path):
    result = search(config, tmp_path / "ray", progress=False, executor="ray", workers=2)
    assert json.loads((tmp_path / "ray" / "front.json").read_text()) == local_front[0]
    assert result.evaluations == local_front[1]


def test_a_killed_worker_does_not_lose_or_double_count(ray_cluster, config, local_front, tmp_path):
    from ecad.search.ray_executor import RayExecutor

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
    assert result.evaluations == local_front[1]


def test_missing_ray_says_how_to_install(monkeypatch, config, tmp_path):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "ray"
                        else real_import(name, *a, **k))
    with pytest.raises(ImportError, match=r"pip install 'ecad\[ray\]'"):
        search(config, tmp_path / "no-ray", progress=False, executor="ray")
