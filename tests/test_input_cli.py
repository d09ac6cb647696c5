"""Bad input on the command line, table-driven, for every subcommand: each row is refused with exit code 1 and one
line on stderr that holds the expected fragment, no traceback, before any model loads (loading fails the test),
and leaves the directories it names as they were. Rows run in-process; a few run as real processes, and Ctrl-C
during start-up is checked on a real process."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from ecad import CacheSchedule
from ecad.cli import main
from ecad.evaluation.images import INDEX_FORMAT
from ecad.search import SearchConfig, schedule_key

PIXART = ("attn1", "attn2", "ff")


def _schedule_file(path: Path, **changes) -> Path:
    data = CacheSchedule.full(4, ["0", "1"], PIXART).to_dict()
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


def _paper(path: Path, second_step: dict) -> Path:
    step = {"0": {"attn1": True, "attn2": True, "ff": True}}
    path.write_text(json.dumps({"cache_schedule": {"schedule": {"000": step, "001": second_step}}}))
    return path


def _fake_run(path: Path, generation: dict | None = None, front: dict | None = None, config=None) -> Path:
    """A run directory as a search writes it, made without a model (for the files a report or resume reads)."""
    schedule = CacheSchedule.full(4, ["0", "1"], PIXART)
    (path / "front").mkdir(parents=True)
    (path / "generations").mkdir()
    schedule.save(path / "front" / "000.json")
    key = schedule_key(schedule)
    config = SearchConfig(model="tiny-shapes", prompts=["a w1"]).to_dict() if config is None else config
    (path / "config.json").write_text(json.dumps(config))
    row = {"file": "front/000.json", "key": key, "quality": 1.0, "cost": 4.0, "speedup": 1.0}
    (path / "front.json").write_text(json.dumps({"full_cost": 4.0, "front": [row]} if front is None else front))
    population = {
        "generation": 0,
        "summary": {},
        "population": [{"key": key, "name": "no-cache", "quality": 1.0, "cost_fraction": 1.0}],
    }
    (path / "generations" / "0000.json").write_text(json.dumps(population if generation is None else generation))
    return path


def _fake_eval(path: Path) -> Path:
    """An eval directory whose one image is a truncated PNG."""
    folder = path / "images" / "no-cache"
    folder.mkdir(parents=True)
    Image.new("RGB", (16, 16), "red").save(folder / "0000.png")
    data = (folder / "0000.png").read_bytes()
    (folder / "0000.png").write_bytes(data[: len(data) // 2])
    CacheSchedule.full(4, ["0", "1"], PIXART).save(path / "schedules" / "no-cache.json")
    key = schedule_key(CacheSchedule.full(4, ["0", "1"], PIXART))
    entry = {
        "key": key,
        "schedule": "schedules/no-cache.json",
        "latents": "images/no-cache/latents.safetensors",
        "files": ["images/no-cache/0000.png"],
    }
    index = {
        "format": INDEX_FORMAT,
        "settings": {},
        "schedules": {"no-cache": entry},
        "rows": [{"row": 0, "prompt": "a w1", "seed": 0}],
    }
    (path / "index.json").write_text(json.dumps(index))
    results = {
        "config": {"model": "tiny-shapes"},
        "num_steps": 4,
        "height": 16,
        "width": 16,
        "images": 1,
        "environment": {"device_name": "cpu", "latency_batch_size": 1, "repeats": 0},
        "results": [
            {
                "name": "no-cache",
                "source": "no caching",
                "key": key,
                "recompute_fraction": 1.0,
                "macs_speedup": 1.0,
                "metrics": {},
            }
        ],
    }
    (path / "results.json").write_text(json.dumps(results))
    return path


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    """Every input the rows name, as ``{name}`` placeholders."""
    t = tmp_path
    (t / "prompts.txt").write_text("a w1\n")
    (t / "null.json").write_text('[{"prompt": null}]')
    (t / "columns.csv").write_text("id,text2\n1,a w1\n")
    (t / "foreign").mkdir()
    (t / "foreign" / "notes.txt").write_text("mine")
    (t / "refdir").mkdir()
    sqlite = _fake_run(t / "sqlite_run")
    db = sqlite3.connect(sqlite / "evaluations.sqlite")
    db.execute("CREATE TABLE people (name TEXT)")
    db.execute("INSERT INTO people VALUES ('ada')")
    db.commit()
    db.close()
    list_config = _fake_run(t / "list_config", config=[])
    wal_store = _fake_run(t / "wal_store")  # an ecad store (WAL journal) of another schema: read-only SQLite
    db = sqlite3.connect(wal_store / "evaluations.sqlite")  # opens leave -shm/-wal files unless told it is immutable
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE evaluations (key TEXT PRIMARY KEY, quality REAL, cost REAL, metrics TEXT, created REAL)")
    db.execute("CREATE TABLE info (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO info VALUES ('schema', '9')")
    db.commit()
    db.close()
    (t / "bad_index").mkdir()
    (t / "bad_index" / "index.json").write_text("[]")
    steps = {f"{i:03d}": {"0": {"attn1": True}} for i in range(3)}
    for name, content in {
        "steps_1e15.json": _schedule_file(t / "a.json", num_steps=1e15).read_text(),
        "steps_inf.json": '{"format": "ecad.schedule/1", "num_steps": Infinity, "components": ["attn1"], '
        '"blocks": {"0": {"attn1": "1"}}}',
        "steps_neg.json": _schedule_file(t / "a.json", num_steps=-5).read_text(),
        # 150 bytes: spun forever before (nothing bounded the 10^12 steps)
        "steps_1e12.json": '{"format": "ecad.schedule/1", "num_steps": 1000000000000, "components": ["attn1"], '
        '"blocks": {"0": {}}}',
        "steps_1e12_bits.json": _schedule_file(t / "a.json", num_steps=10**12).read_text(),
        "blocks_list.json": _schedule_file(t / "a.json", blocks=[{"attn1": "1111"}]).read_text(),
        "bits_number.json": _schedule_file(t / "a.json", blocks={"0": {"attn1": 1011}}).read_text(),
        "metadata_list.json": _schedule_file(t / "a.json", metadata=["x"]).read_text(),
        "newer.json": _schedule_file(t / "a.json", format="ecad.schedule/3").read_text(),
        "duplicate.json": '{"format": "ecad.schedule/1", "num_steps": 1, "components": ["a"], '
        '"blocks": {"0": {"a": "1"}, "0": {"a": "0"}}}',
        "paper_empty.json": '{"cache_schedule": {"schedule": {}}}',
        "paper_strings.json": _paper(t / "a.json", {"0": {"attn1": "false", "attn2": True, "ff": True}}).read_text(),
        "paper_null.json": _paper(t / "a.json", {"0": {"attn1": None, "attn2": True, "ff": True}}).read_text(),
        "paper_missing.json": _paper(t / "a.json", {"0": {"attn1": True, "ff": True}}).read_text(),
        "paper_steps.json": json.dumps({"cache_schedule": {"num_inference_steps": 20, "schedule": steps}}),
    }.items():
        (t / name).write_text(content)
    out = {p.stem: str(p) for p in t.iterdir()}
    out.update(
        run=str(_fake_run(t / "run")),
        no_population=str(_fake_run(t / "no_pop", generation={"generation": 0})),
        empty_front=str(_fake_run(t / "empty_front", front={})),
        eval_png=str(_fake_eval(t / "eval_png")),
        sqlite_run=str(sqlite),
        list_config=str(list_config),
        wal_store=str(wal_store),
        new=str(t / "new" / "run"),
        tmp=str(t),
        missing=str(t / "missing"),
    )
    return out


SEARCH = "search --model tiny-shapes --prompts {prompts} --out {new}"
EVAL = "eval --model tiny-shapes --prompts {prompts} --out {new}"
GENERATE = "generate --model tiny-shapes --prompt hi --out {tmp}/x.png"

# (argv, fragment of the one error line, directories that must stay as they were)
ROWS = [
    # demo
    ("demo --population 1", "argument --population: must be a whole number >= 2, got 1", ()),
    ("demo --generations 0", "argument --generations: must be a whole number >= 1, got 0", ()),
    ("demo --prompts 17", "argument --prompts: must be a whole number from 1 to 16", ()),
    ("demo --device nonsense", "argument --device: must be auto or a device", ()),
    ("demo --out {foreign}", "is not empty and holds no search run", ("foreign",)),
    # show: the schedule formats
    ("show {missing}", "schedule file not found", ()),
    ("show {steps_1e15}", "expected 1000000000000000 characters '0'/'1'", ()),
    ("show {steps_inf}", "Infinity is not a JSON number", ()),
    ("show {steps_neg}", "'num_steps' is -5, must be >= 1", ()),
    ("show --json {steps_1e12}", "no block lists a component", ()),
    ("show --json {steps_1e12_bits}", "expected 1000000000000 characters", ()),
    ("show {blocks_list}", "'blocks' is a list", ()),
    ("show {bits_number}", "'blocks/0/attn1' is a number 1011, expected string", ()),
    ("show {metadata_list}", "'metadata' is a list", ()),
    ("show {newer}", "this ecad reads ecad.schedule/1 and ecad.schedule/2", ()),
    ("show {duplicate}", "duplicate key '0'", ()),
    ("show {paper_empty}", "'cache_schedule/schedule' is empty", ()),
    ("show {paper_strings}", "'cache_schedule/schedule/001/0/attn1' is a string \"false\", expected boolean", ()),
    ("show {paper_null}", "'cache_schedule/schedule/001/0/attn1' is null", ()),
    ("show {paper_missing}", "step 001, block 0: missing ['attn2']", ()),
    ("show {paper_steps}", "num_inference_steps is 20 but the schedule lists 3 steps", ()),
    # macs
    ("macs --arch pixart-alpha --batch-size 0", "argument --batch-size: must be a whole number >= 1, got 0", ()),
    ("macs --arch pixart-alpha --text-len -1", "argument --text-len: must be a whole number >= 1, got -1", ()),
    ("macs --arch pixart-alpha --steps 0", "argument --steps: must be a whole number >= 1", ()),
    ("macs --arch pixart-alpha --height 0", "argument --height: must be a whole number >= 1, got 0", ()),
    ("macs --arch pixart-alpha --height 264", "positive multiples of 16, got 264x256", ()),
    ("macs --arch pixart-alpha --height x", "argument --height: expected a whole number, got 'x'", ()),
    ("macs --arch nope", "unknown architecture preset 'nope'; known presets: flux-dev", ()),
    ("macs --arch pixart-alpha --schedule {blocks_list}", "'blocks' is a list", ()),
    ("macs --arch pixart-alpha --schedule {paper_null}", "is null", ()),
    # generate
    (GENERATE + " --steps 0", "argument --steps: must be a whole number >= 1, got 0", ()),
    (GENERATE + " --steps -5", "argument --steps: must be a whole number >= 1, got -5", ()),
    (GENERATE + " --guidance nan", "argument --guidance: must be a finite number >= 0, got nan", ()),
    (GENERATE + " --seed -1", "argument --seed: must be a whole number >= 0", ()),
    (GENERATE + " --device nonsense", "argument --device", ()),
    (GENERATE + " --height 72", "height 72 is not a multiple of 16, which tiny-shapes needs", ()),
    (GENERATE + " --schedule {steps_neg}", "must be >= 1", ()),
    ("generate --model tiny-shapes --prompt ' ' --out {tmp}/x.png", "argument --prompt: must be non-empty text", ()),
    ("generate --model tiny-shapes --prompt hi --out {tmp}/x.xyz", "has no image suffix PIL can write", ()),
    ("generate --model {missing} --prompt hi --out {tmp}/x.png", "model folder not found", ()),
    (
        "generate --model {missing} --prompt hi --out {tmp}/x.png",
        (
            "; give a folder saved with save_pretrained (it "
            "holds model_index.json), a hub id, a preset name or "
            "tiny-shapes"
        ),
        (),
    ),
    # search
    (SEARCH + " --generations 0", "argument --generations: must be a whole number >= 1, got 0", ()),
    (SEARCH + " --generations -1", "argument --generations: must be a whole number >= 1, got -1", ()),
    (SEARCH + " --steps 1", "argument --steps: must be a whole number >= 2, got 1", ()),
    (SEARCH + " --steps -5", "argument --steps: must be a whole number >= 2, got -5", ()),
    (SEARCH + " --images-per-prompt 0", "argument --images-per-prompt: must be a whole number >= 1", ()),
    (SEARCH + " --population -3", "argument --population: must be a whole number >= 2, got -3", ()),
    (SEARCH + " --guidance nan", "argument --guidance: must be a finite number >= 0, got nan", ()),
    (SEARCH + " --limit 0", "argument --limit: must be a whole number >= 1, got 0", ()),
    (SEARCH + " --limit -1", "argument --limit: must be a whole number >= 1, got -1", ()),
    (SEARCH + " --batch-size 0", "argument --batch-size: must be a whole number >= 1", ()),
    (SEARCH + " --workers 0", "argument --workers: must be a whole number >= 1", ()),
    (SEARCH + " --cpus-per-worker 0", "argument --cpus-per-worker: must be a finite number > 0", ()),
    (SEARCH + " --device nonsense", "argument --device", ()),
    (SEARCH + " --metric sharpness", "argument --metric: invalid choice: 'sharpness'", ()),
    (
        SEARCH + " --metric fidelty",
        (
            "invalid choice: 'fidelty' (choose from 'clip', 'fid', 'fidelity', 'image-reward', "
            "'pickscore', 'shape-fid', 'tiny-reward') (did you mean fidelity?)"
        ),
        (),
    ),
    (SEARCH + " --height 72", "height 72 is not a multiple of 16, which tiny-shapes needs", ()),
    ("search --model tiny-shapes --prompts {missing} --out {new}", "prompt file not found", ()),
    ("search --model tiny-shapes --prompts {null} --out {new}", "item 0: 'prompt' is null", ()),
    ("search --model tiny-shapes --prompts {columns} --out {new}", "no prompt column", ()),
    ("search --model tiny-shapes --out {new}", "--prompts is required for a new search", ()),
    ("search --model {missing} --prompts {prompts} --out {new}", "model folder not found", ()),
    ("search --model tiny-shapes --prompts {prompts} --out {foreign}", "holds no search run", ("foreign",)),
    ("search --model tiny-shapes --prompts {prompts} --out {run}", "pass --resume", ("run",)),
    ("search --model tiny-shapes --prompts {prompts} --out {run} --resume --seed 3", "seed: 0 -> 3", ("run",)),
    (
        "search --model tiny-shapes --prompts {prompts} --resume --out {sqlite_run}",
        "evaluations.sqlite is an SQLite database of something else (tables ['people'])",
        ("sqlite_run",),
    ),
    (
        "search --model tiny-shapes --prompts {prompts} --resume --out {wal_store}",
        "has store schema 9, this ecad reads 1",
        ("wal_store",),
    ),
    (
        "search --model tiny-shapes --resume --out {list_config}",
        "is not an ecad search config (format 'list'",
        ("list_config",),
    ),
    # front
    ("front {missing}", "has no front.json yet", ()),
    ("front {empty_front}", "front.json: the top level lacks the field 'full_cost'", ("empty_front",)),
    # eval
    (EVAL + " --latency-batch 0", "argument --latency-batch: must be a whole number >= 1, got 0", ()),
    (EVAL + " --limit 0", "argument --limit: must be a whole number >= 1, got 0", ()),
    (EVAL + " --limit -1", "argument --limit: must be a whole number >= 1", ()),
    (EVAL + " --images-per-prompt 0", "argument --images-per-prompt", ()),
    (EVAL + " --steps 0", "argument --steps: must be a whole number >= 1", ()),
    (EVAL + " --warmup -1", "argument --warmup: must be a whole number >= 0", ()),
    (EVAL + " --repeats -2", "argument --repeats: must be a whole number >= 0", ()),
    (EVAL + " --guidance inf", "argument --guidance: must be a finite number", ()),
    (EVAL + " --device nonsense", "argument --device", ()),
    (EVAL + " --baselines fora:0", "baseline 'fora:0': the argument must be a whole number >= 1", ()),
    (EVAL + " --baselines toca", "unknown baseline 'toca'", ()),
    (EVAL + " --baselines fbcache:x", "baseline 'fbcache:x': its settings must be numbers", ()),
    (EVAL + " --baselines fora:2,dbcache:1,0", "dbcache takes 3 to 4 settings", ()),
    (EVAL + " --metrics fidelity,sharpness", "unknown metric 'sharpness'", ()),
    (EVAL + " --metrics fidelity,tiny-reword", "unknown metric 'tiny-reword' (did you mean tiny-reward?)", ()),
    (EVAL + " --baselines froa:2", "unknown baseline 'froa:2' (did you mean fora?)", ()),
    (EVAL + " --baselines fbcahce", "unknown baseline 'fbcahce' (did you mean fbcache?)", ()),
    (EVAL + " --metrics fid --fid-reference {missing}", "--fid-reference: no such folder", ()),
    (EVAL + " --fid-reference {refdir}", "fid is not in --metrics", ()),
    (EVAL + " --height 72", "height 72 is not a multiple of 16", ()),
    (EVAL + " --schedules {bits_number}", "'blocks/0/attn1' is a number", ()),
    ("eval --model tiny-shapes --prompts {prompts} --out {foreign}", "holds no eval index.json", ("foreign",)),
    (
        "eval --model tiny-shapes --prompts {prompts} --out {bad_index}",
        "index.json: the top level is a list",
        ("bad_index",),
    ),
    # report
    ("report {run} --samples -1", "argument --samples: must be a whole number >= 0", ()),
    ("report {run} --max-generations 1", "--max-generations must be at least 2", ()),
    ("report {run} --max-generations 0", "argument --max-generations: must be a whole number >= 1", ()),
    ("report {missing}", "not a search run directory", ()),
    (
        "report {no_population} -o {tmp}/r/report.html",
        "0000.json: the top level lacks the field 'population'",
        ("no_population",),
    ),
    ("report {run} --eval {eval_png} --samples 1 -o {tmp}/r/report.html", "0000.png is damaged", ("run", "eval_png")),
    ("report {run} -o {tmp}", "is a directory", ("run",)),
]


def _snapshot(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
    }


@pytest.fixture
def no_model(monkeypatch):
    """Every row must be refused before a model loads: loading one fails the test."""
    import diffusers

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was refused")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", refuse)


def _argv(row: str, files: dict[str, str]) -> list[str]:
    import shlex

    return [part.format(**files) for part in shlex.split(row)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "row, fragment, unchanged", ROWS, ids=[r[0].split(" {")[0][:40] + f"-{i}" for i, r in enumerate(ROWS)]
)
def test_bad_argument_is_one_line_and_exit_1(row, fragment, unchanged, files, no_model, capsys):
    before = {name: _snapshot(Path(files[name])) for name in unchanged}
    assert main(_argv(row, files)) == 1
    captured = capsys.readouterr()
    command = "ecad " + row.split()[0]
    lines = [line for line in captured.err.splitlines() if line.startswith(f"{command}: error:")]
    assert len(lines) == 1 and fragment in lines[0], captured.err
    assert "Traceback" not in captured.err
    for name in unchanged:
        assert _snapshot(Path(files[name])) == before[name], f"{name} was changed"
    assert not Path(files["new"]).parent.exists(), "a refused command left a new directory behind"


def test_device_cuda_without_a_gpu(files, no_model, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for row in (GENERATE + " --device cuda", SEARCH + " --device cuda:1", EVAL + " --device cuda"):
        assert main(_argv(row, files)) == 1
        err = capsys.readouterr().err
        assert "torch sees no CUDA GPU on this machine" in err and "use --device cpu or auto" in err, err
    assert not Path(files["new"]).parent.exists()


def test_foreign_sqlite_file_is_not_written(files, no_model, capsys):
    db = Path(files["sqlite_run"]) / "evaluations.sqlite"
    before = db.read_bytes()
    assert main(_argv(SEARCH.replace("{new}", "{sqlite_run}") + " --resume", files)) == 1
    assert db.read_bytes() == before
    tables = sqlite3.connect(db).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("people",)]


def test_resume_after_a_failed_start_starts_the_run(files, tiny_model_dir, capsys):
    """A typo in --model is refused and leaves nothing behind; the retry with --resume finds no run yet: it starts
    one, and says so."""
    search = (
        "search --model {model} --prompts {prompts} --out {new} --population 2 --generations 1 --steps 2 "
        "--height 16 --width 16 --device cpu --resume"
    )
    assert main(_argv(search, {**files, "model": files["missing"]})) == 1
    assert not Path(files["new"]).exists()
    capsys.readouterr()
    assert main(_argv(search, {**files, "model": str(tiny_model_dir)})) == 0
    assert f"there is no search run in {files['new']} yet; starting it" in capsys.readouterr().out
    assert (Path(files["new"]) / "front.json").is_file()


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecad", *argv], capture_output=True, text=True, timeout=timeout)


def test_a_mistyped_hub_id_offline_is_one_line_with_the_fix(tmp_path):
    """Not a folder, not cached, the hub not reachable: one error line that names the nearest known model and what to
    do, without the hub library's and diffusers' lines (diffusers' message points at a stack trace ecad does not
    print)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecad",
            "generate",
            "--model",
            "PixArt-alpa/PixArt-XL-2-256x256",
            "--prompt",
            "hi",
            "--out",
            str(tmp_path / "x.png"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO ecad")]
    assert len(lines) == 1 and lines[0].startswith("ecad generate: error: cannot load model"), result.stderr
    assert "(did you mean PixArt-alpha/PixArt-XL-2-256x256?)" in lines[0] and "`hf download ID`" in lines[0]
    assert "stacktrace" not in lines[0]


def test_bad_argument_in_a_real_process(files):
    """The file that made `ecad show --json` spin forever: refused at once, one line, exit code 1."""
    result = _run("show", "--json", files["steps_1e12"], timeout=120)
    assert result.returncode == 1, result.stderr
    assert "no block lists a component" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _interrupt(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    return process.returncode, err


def test_ctrl_c_while_the_command_line_imports_prints_one_line():
    process = subprocess.Popen(
        [sys.executable, "-m", "ecad", "macs", "--arch", "pixart-alpha"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    maps, deadline = Path(f"/proc/{process.pid}/maps"), time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline and "libtorch" not in maps.read_text():
        time.sleep(0.01)  # the command line is parsed (it imports nothing heavy); `macs` is now importing torch
    returncode, err = _interrupt(process)
    assert returncode == 130 and err.strip() == "ecad macs: interrupted", (returncode, err)


@pytest.mark.slow
def test_ctrl_c_while_a_search_starts_prints_one_line_and_leaves_no_run(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecad",
            "search",
            "--model",
            "tiny-shapes",
            "--prompts",
            "tiny-shapes",
            "--metric",
            "fidelity",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not out.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the run directory appears right before the model loads
    assert out.exists(), "the search did not start"
    returncode, err = _interrupt(process)
    assert returncode == 130 and err.strip().splitlines()[-1] == "ecad search: interrupted", (returncode, err)
    assert not out.exists(), "an interrupted start left its run directory behind"


def test_ctrl_c_that_a_library_turns_into_its_own_error_is_still_an_interruption(monkeypatch, capsys):
    """diffusers reports a safetensors read cut short by Ctrl-C as "Unable to load weights" (an OSError): still one
    line, "interrupted", exit 130; the same error without a Ctrl-C stays an error."""
    from ecad.cli import show

    def load_cut_short(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            raise OSError("Unable to load weights from checkpoint file") from None

    monkeypatch.setattr(show, "run", load_cut_short)
    assert main(["show", "x.json"]) == 130
    assert capsys.readouterr().err.strip() == "ecad show: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # main put the handler back

    def load_fails(args):
        raise OSError("Unable to load weights from checkpoint file")

    monkeypatch.setattr(show, "run", load_fails)
    assert main(["show", "x.json"]) == 1
    assert "error: Unable to load weights" in capsys.readouterr().err
