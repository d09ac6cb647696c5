"""The search: heuristics seed it, it writes its run directory, resumes after kill -9 to the same front."""

import json
import multiprocessing
import os
import signal
import sqlite3
import time

import pytest
import torch
from tiny_pipelines import tiny_pixart_pipeline

import ecad
from ecad.cli import main
from ecad.schedule import heuristics
from ecad.search import RunDirectory, SearchConfig, search


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "pipe"
    tiny_pixart_pipeline(num_layers=3, seed=1).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("a w1 w2\nw3 w4\n\nw5 a\n")
    return path


def cli_args(model_dir, prompt_file, out, generations=3):
    return [
        "search",
        "--model",
        str(model_dir),
        "--prompts",
        str(prompt_file),
        "--metric",
        "fidelity",
        "--population",
        "6",
        "--generations",
        str(generations),
        "--steps",
        "6",
        "--height",
        "16",
        "--width",
        "16",
        "--batch-size",
        "4",
        "--images-per-prompt",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]


def test_heuristics_cover_the_paper_seeds():
    layout = ecad.model_layout(tiny_pixart_pipeline(num_layers=4))
    assert heuristics.fora(layout, 6, 3).recompute[:, 0, 0].tolist() == [True, False, False, True, False, False]
    tgate = heuristics.tgate(layout, 10, gate_step=4)
    assert tgate.recompute[3, :, 1].all() and not tgate.recompute[4:, :, 1].any() and tgate.recompute[:, :, 0].all()
    delta = heuristics.delta_dit(layout, 6, n=3)
    assert delta.recompute[1, :2].all() and not delta.recompute[1, 2:].any()  # early: rear blocks cached
    assert delta.recompute[4, 2:].all() and not delta.recompute[4, :2].any()  # late: front blocks cached
    ff = heuristics.component_interval(layout, 6, "ff", 2)
    assert ff.recompute[:, :, 2].sum() == 3 * 4 and ff.recompute[:, :, :2].all()
    population = heuristics.initial_population(layout, 6, 20, seed=0)
    assert len(population) == 20 and len(set(population)) == 20
    names = [s.metadata["name"] for s in population]
    assert names[:3] == ["no-cache", "fora-2", "fora-3"] and "tgate-2" in names and "delta-dit-2" in names
    assert heuristics.baseline(layout, 6, "fora:2") == heuristics.fora(layout, 6, 2)
    with pytest.raises(ValueError, match="unknown baseline"):
        heuristics.baseline(layout, 6, "toca")


def run_counted(args, log):
    """``ecad ...`` with every candidate evaluation logged as "pid key" when it starts (each line written and closed
    at once: kill -9 loses none); its exit code."""
    from ecad.search import evaluator, schedule_key

    original = evaluator.CandidateEvaluator.__call__

    def counted(self, schedule, *rows):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {schedule_key(schedule)}\n")
        return original(self, schedule, *rows)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluator.CandidateEvaluator, "__call__", counted)
        return main(args)


def run_killable(args, log, threads):
    """``run_counted`` in a child process, at the parent's thread count: identical arithmetic to the in-process
    runs."""
    torch.set_num_threads(threads)
    run_counted(args, log)


def start_counted(args, log):
    """``run_counted`` in a process of its own, to be killed. Spawned, not forked: a child forked from a process whose
    OpenMP pool has started (more than one thread) hangs at its first parallel region."""
    process = multiprocessing.get_context("spawn").Process(
        target=run_killable, args=(args, log, torch.get_num_threads())
    )
    process.start()
    return process


def evaluation_log(log):
    """``[(pid, key), ...]`` in the order the evaluations started."""
    return [tuple(line.split()) for line in log.read_text().splitlines()]


def stored_keys(out):
    try:
        with sqlite3.connect(out / "evaluations.sqlite", timeout=0.1) as db:
            return {k for (k,) in db.execute("SELECT key FROM evaluations")}
    except sqlite3.Error:
        return set()


def evaluated(out):
    return len(stored_keys(out))


def new_evaluations(out):
    return sum(json.loads(p.read_text())["summary"]["new_evaluations"] for p in (out / "generations").iterdir())


KILL_GENERATIONS = 3


@pytest.fixture(scope="module")
def straight_run(model_dir, prompt_file, tmp_path_factory):
    """An uninterrupted paper-strategy run with cli_args' other defaults and its evaluation log."""
    path = tmp_path_factory.mktemp("straight")
    straight, straight_log = path / "run", path / "run.log"
    args = cli_args(model_dir, prompt_file, straight, KILL_GENERATIONS) + ["--strategy", "paper"]
    assert run_counted(args, straight_log) == 0
    return straight, straight_log


def test_search_writes_a_complete_run_directory(straight_run, capsys):
    out, log = straight_run  # `ecad search` with cli_args' defaults
    calls = [key for _, key in evaluation_log(log)]
    config = json.loads((out / "config.json").read_text())
    assert config["prompts"] == ["a w1 w2", "w3 w4", "w5 a"] and config["population"] == 6
    assert sorted(p.name for p in (out / "generations").iterdir()) == ["0000.json", "0001.json", "0002.json"]
    generation = json.loads((out / "generations" / "0000.json").read_text())
    assert len(generation["population"]) == 6
    assert generation["population"][0]["name"] == "no-cache"
    assert generation["population"][0]["cost_fraction"] == 1.0
    front = json.loads((out / "front.json").read_text())["front"]
    assert front and (out / "front.png").stat().st_size > 1000
    for row in front:
        schedule = ecad.CacheSchedule.load(out / row["file"])
        assert not bool(schedule.effective()[1:].all())  # the constraint: every front schedule reuses something
        assert row["speedup"] > 1.0
    costs = [row["cost"] for row in front]
    assert costs == sorted(costs)
    assert len(calls) == len(set(calls)) == new_evaluations(out) >= 6 and set(calls) == stored_keys(out)
    capsys.readouterr()
    assert main(["front", str(out)]) == 0
    listing = capsys.readouterr().out
    assert [line[2:].split()[0] for line in listing.splitlines() if line[2:].startswith(str(out / "front"))] == [
        str(out / row["file"]) for row in front
    ]  # one line per front file, in order


@pytest.mark.parametrize("strategy", ["paper", "fast"])
def test_resume_after_kill_9_reaches_the_same_front(model_dir, prompt_file, tmp_path, straight_run, strategy):
    """Killed and resumed with either strategy: the uninterrupted paper run's front (fast changes no result)."""
    generations = KILL_GENERATIONS
    (straight, straight_log), killed, killed_log = straight_run, tmp_path / "killed", tmp_path / "killed.log"
    killed_args = cli_args(model_dir, prompt_file, killed, generations) + ["--strategy", strategy]
    process = start_counted(killed_args, killed_log)
    deadline = time.time() + 300
    while evaluated(killed) < 9 and process.is_alive() and time.time() < deadline:  # inside generation 1
        time.sleep(0.005)
    process.kill()  # SIGKILL
    process.join()
    assert process.exitcode == -signal.SIGKILL, "the run finished before it could be killed"
    done = len(list((killed / "generations").iterdir()))
    assert done < generations
    stored_at_kill = stored_keys(killed)
    counted_at_kill = new_evaluations(killed)  # the generations finished before the kill

    assert (
        run_counted(cli_args(model_dir, prompt_file, killed, generations) + ["--resume"], killed_log) == 0
    )  # keeps it
    assert json.loads((killed / "config.json").read_text())["strategy"] == strategy
    front_a = json.loads((straight / "front.json").read_text())
    front_b = json.loads((killed / "front.json").read_text())
    assert front_a == front_b
    for row in front_a["front"]:
        assert (straight / row["file"]).read_text() == (killed / row["file"]).read_text()
    for name in sorted(os.listdir(straight / "generations")):
        a = json.loads((straight / "generations" / name).read_text())["population"]
        b = json.loads((killed / "generations" / name).read_text())["population"]
        assert a == b, name

    # Each schedule is evaluated exactly once: uninterrupted, every started evaluation is stored and counted once.
    calls = [key for _, key in evaluation_log(straight_log)]
    assert len(calls) == len(set(calls)) == new_evaluations(straight) and set(calls) == stored_keys(straight)
    # Across the kill: nothing stored before it is evaluated again; only the candidate in flight (started, never
    # stored) is evaluated a second time, by the resumed run.
    log = evaluation_log(killed_log)
    first_pid = log[0][0]
    before = [key for pid, key in log if pid == first_pid]
    after = [key for pid, key in log if pid != first_pid]
    assert len(before) == len(set(before)) and len(after) == len(set(after))
    # the replayed generations' files keep the evaluations they took; the rest are the resumed run's
    assert new_evaluations(killed) == counted_at_kill + len(after)
    assert set(before) - stored_at_kill <= {before[-1]} and not set(after) & stored_at_kill
    assert stored_keys(killed) == set(before) | set(after) == stored_keys(straight)


def test_bad_run_directories_are_clear_errors(model_dir, prompt_file, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(cli_args(model_dir, prompt_file, foreign)) == 1
    assert "holds no search run" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"

    out = tmp_path / "run"
    assert main(cli_args(model_dir, prompt_file, out, generations=1)) == 0
    capsys.readouterr()
    assert main(cli_args(model_dir, prompt_file, out, generations=1)) == 1
    assert "pass --resume" in capsys.readouterr().err
    changed = cli_args(model_dir, prompt_file, out, generations=1) + ["--resume", "--seed", "5"]
    assert main(changed) == 1
    assert "seed: 0 -> 5" in capsys.readouterr().err
    assert main(["front", str(tmp_path / "missing")]) == 1
    assert "no front.json" in capsys.readouterr().err

    (out / "evaluations.sqlite").write_bytes(b"garbage" * 100)
    for suffix in ("-wal", "-shm"):
        (out / f"evaluations.sqlite{suffix}").unlink(missing_ok=True)
    assert main(cli_args(model_dir, prompt_file, out, generations=2) + ["--resume"]) == 1
    assert "not a readable ecad evaluation store" in capsys.readouterr().err
    (out / "config.json").write_text("{")
    assert main(cli_args(model_dir, prompt_file, out, generations=2) + ["--resume"]) == 1
    assert "config.json is damaged" in capsys.readouterr().err


def test_python_api_and_empty_prompts(model_dir, tmp_path):
    config = SearchConfig(
        model=str(model_dir),
        prompts=["a w1"],
        population=4,
        generations=1,
        num_steps=6,
        height=16,
        width=16,
        device="cpu",
    )
    result = search(config, tmp_path / "api", progress=False)
    assert result.evaluations >= 4 and len(result.hypervolumes) == 1
    assert RunDirectory(tmp_path / "api").read_front()["front"] == result.front
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="contains no prompts"):
        from ecad.models.prompts import load_prompts

        load_prompts(str(empty))


def test_latency_cost_is_measured_once_and_kept(model_dir, prompt_file, tmp_path):
    out = tmp_path / "latency"
    args = cli_args(model_dir, prompt_file, out, generations=1) + ["--cost", "latency"]
    assert main(args) == 0
    table = json.loads((out / "latency.json").read_text())
    assert len(table["component_seconds"]) == 3 and all(v >= 0 for row in table["component_seconds"] for v in row)
    assert all(v > 0 for v in table["replay_seconds"]) and table["batch_size"] == 4 * 2  # 2 prompts x 2 images, CFG
    front = json.loads((out / "front.json").read_text())
    assert all(row["cost"] == row["seconds"] for row in front["front"])
    # resuming reuses the stored table: doubling every stored time doubles every cost exactly
    table["component_seconds"] = [[2 * v for v in row] for row in table["component_seconds"]]
    for name in ("replay_seconds", "full_block_seconds"):
        table[name] = [2 * v for v in table[name]]
    table["outside_seconds"] *= 2
    (out / "latency.json").write_text(json.dumps(table))
    (out / "evaluations.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (out / f"evaluations.sqlite{suffix}").unlink(missing_ok=True)
    assert main(cli_args(model_dir, prompt_file, out, generations=1) + ["--cost", "latency", "--resume"]) == 0
    doubled = json.loads((out / "front.json").read_text())
    assert doubled["full_cost"] == pytest.approx(2 * front["full_cost"], rel=1e-12)


def test_a_run_counted_at_assumed_inputs_is_not_resumed_with_the_observed_cost(tmp_path):
    """Runs from before costs were counted at the observed call stored other costs: resuming would mix them."""
    from ecad.search import RunDirectory, SearchConfig

    config = SearchConfig(model="tiny-shapes", prompts=["a red circle"])
    run = RunDirectory(tmp_path / "old")
    run.commit(run.open(config, resume=False))
    stored = json.loads(run.config_path.read_text())
    del stored["cost_model"]
    run.config_path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="cost_model: 'assumed-inputs/0' -> 'observed-call/1'"):
        run.open(config, resume=True)
