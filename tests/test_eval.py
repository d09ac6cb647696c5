"""`ecad eval`: images per schedule with an index, metrics (FID with an injected extractor), MACs, measured latency,
tables, and resuming without generating again."""

import csv
import json

import pytest
import torch

import ecad
from ecad.cli import main
from ecad.evaluation import EvalConfig, ImageStore, evaluate
from ecad.generation import Generated
from ecad.metrics import FidMetric, get_metric
from ecad.models.prompts import load_prompts
from ecad.schedule import heuristics
from ecad.search import schedule_from_key, schedule_key


class MeanColour(torch.nn.Module):
    """A stand-in for Inception: per-channel means and spreads of float images in [0, 1]."""

    def forward(self, images):
        images = images.float()
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1)


def images(seed, n=12, shift=0.0):
    generator = torch.Generator().manual_seed(seed)
    return Generated((torch.rand(n, 3, 8, 8, generator=generator) + shift).clamp(0, 1), torch.zeros(n, 4), ["p"] * n)


def test_fid_with_an_injected_feature_extractor(tmp_path):
    reference = images(0)
    metric = FidMetric(feature=MeanColour())
    metric.prepare(reference)
    same = metric(reference)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and same["quality"] == -same["fid"]
    shifted = metric(images(0, shift=0.3))
    assert shifted["fid"] > 0.01 and shifted["quality"] < same["quality"]
    assert metric(images(0, shift=0.3)) == shifted  # the reference statistics are kept between calls

    folder = tmp_path / "real"
    folder.mkdir()
    from ecad.metrics.images import to_pil

    for i, image in enumerate(reference.images):
        to_pil(image).save(folder / f"{i}.png")
    from_folder = get_metric("fid", feature=MeanColour(), reference=folder)
    from_folder.prepare(images(1))  # the folder, not these images, is the reference
    assert from_folder(reference)["fid"] < 1e-3  # 8-bit PNG rounding only

    with pytest.raises(FileNotFoundError, match="reference folder"):
        FidMetric(feature=MeanColour(), reference=tmp_path / "missing").prepare(reference)


def test_schedule_from_key_inverts_schedule_key():
    from tiny_pipelines import tiny_pixart_pipeline

    layout = ecad.model_layout(tiny_pixart_pipeline(num_layers=3))
    for schedule in heuristics.initial_population(layout, 7, 12):
        rebuilt = schedule_from_key(schedule_key(schedule), layout)
        assert torch.equal(rebuilt.recompute, schedule.effective()) and schedule_key(rebuilt) == schedule_key(schedule)


@pytest.fixture(scope="module")
def schedule_file(tiny_model_dir, tmp_path_factory):
    from tiny_pipelines import tiny_pixart_pipeline

    layout = ecad.model_layout(tiny_pixart_pipeline(num_layers=3))
    path = tmp_path_factory.mktemp("schedules") / "mine.json"
    heuristics.component_interval(layout, 6, "ff", 3).save(path)
    return path


def eval_args(model_dir, prompts, out, *extra):
    return [
        "eval",
        "--model",
        str(model_dir),
        "--prompts",
        str(prompts),
        "--steps",
        "6",
        "--height",
        "16",
        "--width",
        "16",
        "--batch-size",
        "4",
        "--warmup",
        "1",
        "--repeats",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def test_eval_writes_tables_and_resumes_without_generating(
    tiny_model_dir, schedule_file, tmp_path, monkeypatch, capsys
):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a w1\nw2 w3\nw4 a\n")
    out = tmp_path / "eval"
    config = EvalConfig(
        model=str(tiny_model_dir),
        prompts=load_prompts(str(prompts), limit=2),
        schedules=[str(schedule_file)],
        baselines=["fora:2", "tgate"],
        metrics=["fidelity", "fid"],
        num_steps=6,
        height=16,
        width=16,
        batch_size=4,
        warmup=1,
        repeats=2,
        device="cpu",
    )
    report = evaluate(config, out, metrics={"fid": FidMetric(feature=MeanColour())}, progress=False)

    names = [r["name"] for r in report["results"]]
    assert names == ["no-cache", "fora-2", "tgate-2", "mine"]
    index = json.loads((out / "index.json").read_text())
    assert [(r["row"], r["prompt"], r["seed"]) for r in index["rows"]] == [(0, "a w1", 0), (1, "w2 w3", 0)]
    for name in names:
        assert index["schedules"][name]["files"] == [f"images/{name}/0000.png", f"images/{name}/0001.png"]
        assert (out / "images" / name / "0001.png").is_file()
    reference, fora = report["results"][0], report["results"][1]
    # what each stored image set really is, and that timing replays, is checked in tests/test_eval_wiring.py
    assert fora["metrics"]["fidelity"]["latent_rel_error"] > 0 and fora["metrics"]["fid"]["fid"] > 0
    assert fora["macs_speedup"] == reference["macs"] / fora["macs"] > 1.5 and fora["recompute_fraction"] == 0.5
    for row in report["results"]:
        latency = row["latency"]
        assert latency["repeats"] == 2 and latency["min_s"] <= latency["median_s"] <= latency["max_s"]
        assert 0 < latency["transformer_median_s"] < latency["median_s"]
        assert row["speedup"] == reference["latency"]["median_s"] / latency["median_s"]
    env = report["environment"]
    assert env["device"] == "cpu" and env["device_name"] and env["torch"] == torch.__version__
    assert env["latency_batch_size"] == 2 and env["diffusers"]  # the first scored batch: both rows
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == names
    assert {
        "macs",
        "macs_speedup",
        "latency_median_s",
        "latency_q1_s",
        "latency_q3_s",
        "speedup",
        "fid",
        "fidelity.ssim",
        "fidelity.psnr",
    } <= set(rows[0])
    table = (out / "results.md").read_text()
    assert "| schedule |" in table and "| fora-2 |" in table and env["device_name"] in table

    # Resume: a new schedule is generated, the others are read back; metrics come from the stored images.
    generated = []
    original = ImageStore.save
    monkeypatch.setattr(ImageStore, "save", lambda self, name, *a: generated.append(name) or original(self, name, *a))
    capsys.readouterr()
    args = eval_args(
        tiny_model_dir,
        prompts,
        out,
        "--limit",
        "2",
        "--schedules",
        str(schedule_file),
        "--baselines",
        "fora:2,tgate,fora:3",
        "--metrics",
        "fidelity",
    )
    assert main(args) == 0
    assert generated == ["fora-3"]
    again = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in again["results"]] == ["no-cache", "fora-2", "tgate-2", "fora-3", "mine"]
    for before in report["results"]:
        after = next(r for r in again["results"] if r["name"] == before["name"])
        assert after["metrics"]["fidelity"] == before["metrics"]["fidelity"]
    assert "| fora-3 |" in capsys.readouterr().out

    assert main(eval_args(tiny_model_dir, prompts, out, "--limit", "2", "--guidance", "2")) == 1
    assert "other settings (guidance_scale: 4.5 -> 2.0)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", "8"], "has 6 steps but the evaluation runs 8; pass --resample"),
        (["--baselines", "toca"], "unknown baseline 'toca'"),
        (["--baselines", "fora:2,dbcache:1,0"], "dbcache takes 3 to 4 settings"),
        (["--metrics", "fidelity,sharpness"], "unknown metric 'sharpness'"),
        (["--fid-reference", "somewhere"], "fid is not in --metrics"),
    ],
)
def test_eval_errors_are_one_line(tiny_model_dir, schedule_file, tmp_path, capsys, extra, message):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a w1\n")
    args = eval_args(tiny_model_dir, prompts, tmp_path / "out", "--schedules", str(schedule_file), "--repeats", "0")
    args = [a for a in args if a not in ("--steps", "6")] + extra
    assert main(args) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ecad eval: error:")]
    assert len(errors) == 1 and message in errors[0]


PAPER_PROMPTS = (
    ("ImageRewardPrompts.json", 100, "a concept art of a vehicle, cyberpunk"),
    ("DrawBench200.txt", 200, "A red colored car."),
    ("PartiPrompts.tsv", 1632, "bond"),
)


@pytest.mark.parametrize("name, count, first", PAPER_PROMPTS)
def test_paper_prompt_files_load(name, count, first):
    from conftest import SHARED

    path = SHARED / "paper" / "prompts" / name
    if not path.is_file():
        pytest.skip(f"the paper's prompt files are not at {path.parent} (../shared is absent)")
    prompts = load_prompts(str(path))
    assert len(prompts) == count and prompts[0] == first and all(p == p.strip() and p for p in prompts)
    assert load_prompts(str(path), limit=5) == prompts[:5]
