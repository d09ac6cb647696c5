"""`ecad generate` on a tiny PixArt pipeline saved to disk and loaded through `from_pretrained`."""

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipelines import tiny_pixart_pipeline

import ecad
from ecad import CacheSchedule
from ecad.cli import main

ARGS = ["--prompt", "a w1 w2", "--steps", "4", "--height", "16", "--width", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "pipe"
    tiny_pixart_pipeline(num_layers=2).save_pretrained(path)
    return path


def pixels(path):
    return np.asarray(Image.open(path))


def test_generate_uncached_and_with_full_schedule_are_identical(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["generate", "--model", str(model_dir), "--out", str(tmp_path / "plain.png"), *ARGS]) == 0
    full = ecad.full_schedule(tiny_pixart_pipeline(num_layers=2), 4)
    full.save(tmp_path / "full.json")
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--schedule",
                str(tmp_path / "full.json"),
                "--out",
                str(tmp_path / "cached.png"),
                *ARGS,
            ]
        )
        == 0
    )
    plain = pixels(tmp_path / "plain.png")
    assert plain.shape == (16, 16, 3)
    assert np.array_equal(plain, pixels(tmp_path / "cached.png"))


def test_generate_with_a_caching_schedule_differs(model_dir, tmp_path):
    full = ecad.full_schedule(tiny_pixart_pipeline(num_layers=2), 4)
    bits = full.recompute.clone()
    bits[1:] = False
    full.like(bits).save(tmp_path / "cache.json")
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--schedule",
                str(tmp_path / "cache.json"),
                "--out",
                str(tmp_path / "cached.png"),
                *ARGS,
            ]
        )
        == 0
    )
    assert main(["generate", "--model", str(model_dir), "--out", str(tmp_path / "plain.png"), *ARGS]) == 0
    assert not np.array_equal(pixels(tmp_path / "plain.png"), pixels(tmp_path / "cached.png"))


def test_generate_errors_are_one_line(model_dir, tmp_path, capsys):
    CacheSchedule.from_array(torch.ones(4, 28, 3)).save(tmp_path / "pixart28.json")
    cases = [
        (["--model", str(tmp_path / "nowhere")], "model folder not found"),
        (["--model", str(model_dir), "--schedule", str(tmp_path / "none.json")], "schedule file not found"),
        (["--model", str(model_dir), "--schedule", str(tmp_path / "pixart28.json")], "schedule has 28 blocks"),
    ]
    for extra, message in cases:
        assert main(["generate", *extra, "--out", str(tmp_path / "x.png"), *ARGS]) == 1
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("ecad generate: error:")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    full = ecad.full_schedule(tiny_pixart_pipeline(num_layers=2), 6)
    full.save(tmp_path / "six.json")
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--schedule",
                str(tmp_path / "six.json"),
                "--out",
                str(tmp_path / "x.png"),
                *ARGS,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err  # command-line advice, not Python's (schedule.resample, resample=True)
    assert "schedule has 6 steps but --steps 4" in err and "--steps 6" in err and "--resample" in err
    assert "resample(" not in err and "resample=True" not in err
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--schedule",
                str(tmp_path / "six.json"),
                "--resample",
                "--out",
                str(tmp_path / "x.png"),
                *ARGS,
            ]
        )
        == 0
    )
    assert not (tmp_path / "x.png.tmp").exists()
