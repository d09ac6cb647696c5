"""Schedule files carry the settings they were found and scored under; calls that differ are warned about."""

import json
import logging

import pytest
import torch

import ecad
from ecad.cli import main
from ecad.evaluation import EvalConfig, evaluate
from ecad.models.loading import load_pipeline
from ecad.runtime import provenance
from ecad.runtime.provenance import GenerationSettings
from ecad.schedule import CacheSchedule

PROMPT = ["--prompt", "a w1 w2", "--device", "cpu"]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each difference is warned about once per process; every test starts from none warned."""
    monkeypatch.setattr(provenance, "_warned", set())


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_front_files_record_settings_score_and_mac_speedup(tiny_run, tiny_model_dir, tmp_path):
    summary = json.loads((tiny_run / "front.json").read_text())
    no_cache = summary["no_cache"]
    for row in summary["front"]:
        schedule = CacheSchedule.load(tiny_run / row["file"])
        meta = schedule.metadata
        assert meta["settings"] == {
            "model": str(tiny_model_dir),
            "num_steps": 6,
            "guidance_scale": 4.5,
            "height": 16,
            "width": 16,
        }
        assert meta["score"]["by"] == "ecad search" and meta["score"]["rows"] == 2
        assert meta["score"]["metric"] == "fidelity" and meta["score"]["quality"] == row["quality"]
        assert meta["score"]["numbers"]["fidelity.ssim"] == row["ssim"]
        assert meta["macs"]["total_macs"] == row["macs"] and meta["macs"]["convention"] == "full"
        assert meta["macs"]["mac_speedup"] == pytest.approx(no_cache["macs"] / row["macs"])
        # round trip: what is saved is what loads, bits and metadata
        schedule.save(tmp_path / "copy.json")
        again = CacheSchedule.load(tmp_path / "copy.json")
        assert again == schedule and again.metadata == meta
    assert no_cache["quality"] == pytest.approx(1.0)  # fidelity of no caching against itself


def test_changed_bits_keep_the_settings_but_drop_the_scores(tiny_run):
    schedule = CacheSchedule.load(tiny_run / "front" / "000.json")
    edited = schedule.like(schedule.recompute)
    assert edited.metadata["settings"] == schedule.metadata["settings"]
    assert "score" not in edited.metadata and "macs" not in edited.metadata
    assert schedule.resample(9).metadata["settings"]["num_steps"] == 6  # what it was found with


def test_show_prints_what_the_file_records(tiny_run, capsys):
    assert main(["show", str(tiny_run / "front" / "000.json")]) == 0
    out = capsys.readouterr().out
    assert "found under:" in out and "6 steps, guidance 4.5, 16x16 px" in out
    assert "scored by ecad search: fidelity" in out and "on 2 calibration rows" in out and "MAC speedup" in out
    macs = CacheSchedule.load(tiny_run / "front" / "000.json").metadata["macs"]["total_macs"]
    assert f"MACs (full convention): {macs / 1e6:.4g} MMAC, " in out  # in the unit its size reads in, not 0.0000 T


def test_generate_takes_the_schedules_settings_and_warns_when_told_otherwise(
    tiny_run, tiny_model_dir, tmp_path, caplog
):
    schedule = str(tiny_run / "front" / "000.json")
    caplog.set_level(logging.INFO, logger="ecad")
    assert (
        main(
            [
                "generate",
                "--model",
                str(tiny_model_dir),
                "--schedule",
                schedule,
                *PROMPT,
                "--out",
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    assert warnings_of(caplog) == []
    assert "using the schedule's settings: guidance 4.5, height 16, width 16" in caplog.text
    caplog.clear()
    assert (
        main(
            [
                "generate",
                "--model",
                str(tiny_model_dir),
                "--schedule",
                schedule,
                *PROMPT,
                "--guidance",
                "2",
                "--height",
                "32",
                "--width",
                "32",
                "--out",
                str(tmp_path / "b.png"),
            ]
        )
        == 0
    )
    (warning,) = warnings_of(caplog)
    assert warning.startswith("ecad generate: this schedule was found under")
    assert "guidance 2 (found with 4.5)" in warning and "height 32 (found with 16)" in warning


def test_enable_cache_warns_about_the_model_steps_and_resolution(tiny_run, tiny_model_dir, caplog):
    pipe = load_pipeline(str(tiny_model_dir), device="cpu")
    schedule = CacheSchedule.load(tiny_run / "front" / "000.json")
    call = dict(
        prompt="a w1 w2", guidance_scale=4.5, use_resolution_binning=False, clean_caption=False, output_type="latent"
    )
    with ecad.enable_cache(pipe, schedule):
        pipe(num_inference_steps=6, height=16, width=16, **call)
    assert warnings_of(caplog) == []  # the settings it was found under
    with ecad.enable_cache(pipe, schedule, resample=True):
        pipe(num_inference_steps=8, height=32, width=16, **call)
    (warning,) = warnings_of(caplog)
    assert warning.startswith("ecad.enable_cache:") and "steps 8 (found with 6)" in warning
    assert "height 32 (found with 16)" in warning and "width" not in warning
    caplog.clear()
    other = provenance.annotate(schedule, settings=GenerationSettings("PixArt-alpha/PixArt-XL-2-256x256", 6))
    ecad.enable_cache(pipe, other).disable()
    assert "model" in warnings_of(caplog)[0] and "PixArt-alpha/PixArt-XL-2-256x256" in warnings_of(caplog)[0]


def test_a_name_and_the_folder_or_hub_id_it_stands_for_are_one_model():
    """``tiny-shapes`` is its shipped folder and a preset its hub id, as the shipped model and the presets register
    them (the runtime reads no loader); another model is a difference."""
    from ecad.adapters import presets
    from ecad.models.tiny_shapes import PIPELINE_DIR

    tiny = GenerationSettings(model="tiny-shapes")
    assert tiny.differences(GenerationSettings(model=str(PIPELINE_DIR))) == []
    hub_id = presets()["pixart-alpha"][1].hub_id
    assert hub_id and GenerationSettings(model="pixart-alpha").differences(GenerationSettings(model=hub_id)) == []
    assert tiny.differences(GenerationSettings(model="pixart-alpha")) == ["model pixart-alpha (found with tiny-shapes)"]


def test_eval_warns_and_its_schedule_files_record_the_evaluation(tiny_run, tiny_model_dir, tmp_path, caplog):
    front = str(tiny_run / "front" / "000.json")
    config = EvalConfig(
        model=str(tiny_model_dir),
        prompts=["w5 w6", "a w7"],
        schedules=[front],
        guidance_scale=3.0,
        warmup=0,
        repeats=1,
        device="cpu",
    )
    report = evaluate(config, tmp_path / "eval", progress=False)
    assert "guidance 3 (found with 4.5)" in " ".join(warnings_of(caplog))
    assert report["num_steps"] == 6 and (report["height"], report["width"]) == (16, 16)  # from the schedule file
    index = json.loads((tmp_path / "eval" / "index.json").read_text())
    for row in report["results"]:
        meta = CacheSchedule.load(tmp_path / "eval" / index["schedules"][row["name"]]["schedule"]).metadata
        assert meta["settings"]["guidance_scale"] == 3.0 and meta["settings"]["height"] == 16
        assert meta["score"] == {
            "by": "ecad eval",
            "rows": 2,
            "numbers": {
                "fidelity.ssim": row["metrics"]["fidelity"]["ssim"],
                "fidelity.psnr": row["metrics"]["fidelity"]["psnr"],
                "fidelity.latent_rel_error": row["metrics"]["fidelity"]["latent_rel_error"],
            },
        }
        assert meta["macs"]["mac_speedup"] == pytest.approx(row["macs_speedup"])
        assert meta["measured"]["speedup"] == row["speedup"]


def test_eval_defaults_to_the_pipelines_guidance_without_recorded_settings(tiny_model_dir, tmp_path):
    full = ecad.full_schedule(load_pipeline(str(tiny_model_dir), device="cpu"), 4)
    full.save(tmp_path / "plain.json")
    config = EvalConfig(
        model=str(tiny_model_dir),
        prompts=["w5"],
        schedules=[str(tmp_path / "plain.json")],
        height=16,
        width=16,
        repeats=0,
        device="cpu",
    )
    assert evaluate(config, tmp_path / "eval", progress=False)["config"]["guidance_scale"] == 4.5  # PixArt's default
    assert torch.equal(CacheSchedule.load(tmp_path / "plain.json").recompute, full.recompute)
