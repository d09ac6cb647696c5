"""Bad input through the Python API gets defined, documented behaviour: nested caches, disabled handles, cache
dtypes, schedules as paths, step counts, config fields, prompt files, failed search starts and damaged eval files."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_pipelines import tiny_pixart_pipeline

import ecad
from ecad import CacheSchedule, ScheduleError
from ecad.cli import main
from ecad.evaluation import EvalConfig, ImageStore
from ecad.models.prompts import PromptError, load_prompts
from ecad.search import SearchConfig

STEPS = 4


@pytest.fixture(scope="module")
def pipe():
    return tiny_pixart_pipeline(num_layers=2)


def generate(pipe):
    return pipe(
        "a w1",
        num_inference_steps=STEPS,
        height=16,
        width=16,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
        use_resolution_binning=False,
    ).images


def cached_schedule(pipe):
    full = ecad.full_schedule(pipe, STEPS)
    bits = full.recompute.clone()
    bits[1:] = False
    return full.like(bits)


def test_nested_with_blocks_are_refused_and_the_outer_cache_stays(pipe):
    schedule = cached_schedule(pipe)
    with ecad.enable_cache(pipe, schedule) as outer:
        with pytest.raises(RuntimeError, match="nested blocks are not supported"):
            ecad.enable_cache(pipe, ecad.full_schedule(pipe, STEPS))
        assert ecad.active_cache(pipe).schedule is schedule
        generate(pipe)
        assert outer.counts["reused"] > 0  # the outer cache still runs
    assert ecad.active_cache(pipe) is None


def test_enabling_again_outside_a_with_block_replaces_and_disables_the_old_handle(pipe):
    first = ecad.enable_cache(pipe, cached_schedule(pipe))
    second = ecad.enable_cache(pipe, ecad.full_schedule(pipe, STEPS))
    with pytest.raises(RuntimeError, match="cannot set_schedule: this cache handle was disabled"):
        first.set_schedule(cached_schedule(pipe))
    first.disable()  # a stale handle's disable() leaves the newer cache alone
    assert ecad.active_cache(pipe).schedule is second.schedule
    second.disable()
    assert ecad.active_cache(pipe) is None


def test_a_disabled_handle_refuses_set_schedule_and_with(pipe):
    handle = ecad.enable_cache(pipe, cached_schedule(pipe))
    handle.disable()
    with pytest.raises(RuntimeError, match="cannot set_schedule"):
        handle.set_schedule(ecad.full_schedule(pipe, STEPS))
    with pytest.raises(RuntimeError, match="cannot enter a `with` block"):
        with handle:
            pass
    with ecad.enable_cache(pipe, cached_schedule(pipe)) as handle:
        pass
    with pytest.raises(RuntimeError, match="cannot set_schedule"):
        handle.set_schedule(ecad.full_schedule(pipe, STEPS))
    assert ecad.active_cache(pipe) is None


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.complex64, "float16"])
def test_cache_dtype_must_be_a_floating_type(pipe, dtype):
    with pytest.raises(TypeError, match="cache_dtype must be None or a floating-point torch dtype"):
        ecad.enable_cache(pipe, cached_schedule(pipe), cache_dtype=dtype)
    assert ecad.active_cache(pipe) is None


def test_a_schedule_may_be_a_path_but_not_none(pipe, tmp_path):
    schedule = cached_schedule(pipe)
    schedule.save(tmp_path / "s.json")
    for given in (str(tmp_path / "s.json"), tmp_path / "s.json"):
        with ecad.enable_cache(pipe, given) as handle:
            assert handle.schedule == schedule
            handle.set_schedule(str(tmp_path / "s.json"))
    for bad in (None, 3, {"format": "ecad.schedule/1"}):
        with pytest.raises(TypeError, match="schedule must be an ecad.CacheSchedule or the path of a schedule file"):
            ecad.enable_cache(pipe, bad)
    with pytest.raises(ScheduleError, match="schedule file not found"):
        ecad.enable_cache(pipe, str(tmp_path / "missing.json"))
    with pytest.raises(TypeError, match="resample must be True or False"):
        ecad.enable_cache(pipe, schedule, resample="yes")


@pytest.mark.parametrize("steps", [-4, 0, 2.5, True, "20"])
def test_step_counts_must_be_whole_numbers(pipe, steps):
    with pytest.raises(ScheduleError, match="num_steps must be a whole number >= 1"):
        ecad.full_schedule(pipe, steps)
    with pytest.raises(ScheduleError, match="num_steps must be a whole number >= 1"):
        cached_schedule(pipe).resample(steps)


def test_schedule_bits_must_be_bools_or_0_1():
    with pytest.raises(ScheduleError, match="bools or 0/1"):
        CacheSchedule.from_array([[[1, 2, 0]]])
    with pytest.raises(ScheduleError, match="bools or 0/1"):
        CacheSchedule.from_array([[[1.0, float("nan"), 0.0]]])
    assert CacheSchedule.from_array([[[1, 0, 1]]]).recompute.tolist() == [[[True, False, True]]]


@pytest.mark.parametrize(
    "config, field",
    [
        (lambda: SearchConfig(model="m", prompts=["p"], population=-3), "population must be a whole number >= 2"),
        (lambda: SearchConfig(model="m", prompts=["p"], generations=0), "generations must be a whole number >= 1"),
        (lambda: SearchConfig(model="m", prompts=["p"], num_steps=1), "num_steps must be a whole number >= 2"),
        (
            lambda: SearchConfig(model="m", prompts=["p"], guidance_scale=float("nan")),
            "guidance_scale must be a finite",
        ),
        (lambda: SearchConfig(model="m", prompts=["p"], device="nonsense"), "device must be auto or a device"),
        (lambda: SearchConfig(model="m", prompts=[]), "prompts must be a non-empty list"),
        (lambda: SearchConfig(model="m", prompts=["p", None]), "prompts item 1 must be non-empty text"),
        (lambda: SearchConfig(model="m", prompts=["p"], height=100), "height must be a positive multiple of 8"),
        (lambda: SearchConfig(model="m", prompts=["p"], cost="time"), "cost must be one of macs, latency"),
        (lambda: EvalConfig(model="m", prompts=["p"], latency_batch=0), "latency_batch must be a whole number >= 1"),
        (lambda: EvalConfig(model="m", prompts=["p"], baselines=["fora:x"]), "the argument must be a whole number"),
        (
            lambda: EvalConfig(model="m", prompts=["p"], baselines=["magcache:0.1,2,3"]),
            "magcache takes 1 to 2 settings",
        ),
        (lambda: EvalConfig(model="m", prompts=["p"], repeats=-1), "repeats must be a whole number >= 0"),
    ],
)
def test_config_fields_are_checked_on_creation(config, field):
    with pytest.raises(ValueError, match=field):
        config()


def test_prompt_files_excel_bom_null_and_parser_errors(tmp_path):
    excel = tmp_path / "excel.csv"
    excel.write_bytes('\ufeffprompt,seed\r\na red fox,1\r\n"two, with comma",2\r\n'.encode("utf-8"))
    assert load_prompts(str(excel)) == ["a red fox", "two, with comma"]
    (tmp_path / "null.json").write_text('[{"prompt": null}]')
    with pytest.raises(PromptError, match=r"null.json, item 0: 'prompt' is null"):
        load_prompts(str(tmp_path / "null.json"))
    (tmp_path / "bad.json").write_text('["a", ')
    with pytest.raises(PromptError, match=r"bad.json is damaged: not valid JSON"):
        load_prompts(str(tmp_path / "bad.json"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(PromptError, match=r"latin1.txt is not UTF-8 text"):
        load_prompts(str(tmp_path / "latin1.txt"))
    (tmp_path / "short.tsv").write_text("id\tprompt\n1\n")
    with pytest.raises(PromptError, match=r"short.tsv, row 1: 'prompt' is null \(or a short row\)"):
        load_prompts(str(tmp_path / "short.tsv"))
    for limit in (0, -1, 2.5):
        with pytest.raises(PromptError, match="limit must be a whole number >= 1"):
            load_prompts(str(excel), limit=limit)


class UnloadableMetric:
    """A stand-in metric whose weights cannot be loaded: it fails on its first use, after the model has loaded."""

    name = "unloadable"
    needs_reference = False

    def __call__(self, generated):
        raise OSError("cannot load the unloadable metric's weights (a stand-in)")


def test_a_failed_search_start_leaves_nothing_and_the_corrected_command_works(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    """A new run whose first candidate fails (the stand-in metric) is removed, an existing empty --out is emptied
    again, and the corrected command then works without --resume."""
    from ecad.metrics import METRICS

    monkeypatch.setitem(METRICS, "unloadable", UnloadableMetric)
    monkeypatch.setattr("ecad.cli.search.METRIC_NAMES", (*METRICS,))  # the parser's choices: the registered metrics
    base = [
        "search",
        "--model",
        str(tiny_model_dir),
        "--prompts",
        "tiny-shapes",
        "--limit",
        "1",
        "--population",
        "4",
        "--generations",
        "1",
        "--steps",
        "4",
        "--height",
        "16",
        "--width",
        "16",
        "--device",
        "cpu",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "new" / "run", empty):
        assert main([*base, "--metric", "unloadable", "--out", str(out)]) == 1
        assert "cannot load the unloadable metric's weights" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and list(empty.iterdir()) == []
    assert main([*base, "--metric", "fidelity", "--out", str(empty)]) == 0
    assert json.loads((empty / "config.json").read_text())["metric"] == "fidelity"


def test_damaged_eval_files_are_named(tmp_path):
    from ecad.evaluation.images import INDEX_FORMAT

    folder = tmp_path / "images" / "s"
    folder.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(folder / "0000.png")
    (folder / "latents.safetensors").write_bytes(b"garbage" * 10)
    entry = {
        "key": "k",
        "schedule": "schedules/s.json",
        "latents": "images/s/latents.safetensors",
        "files": ["images/s/0000.png"],
    }
    index = {
        "format": INDEX_FORMAT,
        "settings": {},
        "rows": [{"row": 0, "prompt": "p", "seed": 0}],
        "schedules": {"s": entry},
    }
    (tmp_path / "index.json").write_text(json.dumps(index))
    store = ImageStore(tmp_path)
    store.read()
    with pytest.raises(ValueError, match=r"latents.safetensors is damaged .*run `ecad eval` again with the same"):
        store.load("s")
    png = (folder / "0000.png").read_bytes()
    (folder / "0000.png").write_bytes(png[:30])
    with pytest.raises(ValueError, match=r"0000.png is damaged"):
        store.load("s")
    (tmp_path / "index.json").write_text(json.dumps({**index, "rows": "all"}))
    with pytest.raises(ValueError, match=r"index.json: 'rows' is a string"):
        ImageStore(tmp_path).read()
