"""The MAC cost model: the paper's numbers, the true cost, per-component accounting and `ecad macs`."""

import json

import pytest
import torch
from tiny_pipelines import tiny_pixart_transformer

import ecad
from ecad import CacheSchedule
from ecad.cli import main
from ecad.macs import count_macs


def pixart_files(root):
    files = sorted(p for p in root.glob("*/*.json") if p.parent.name.startswith("pixart"))
    assert len(files) >= 13
    return files


def test_paper_convention_reproduces_every_pixart_file(paper_schedules):
    for path in pixart_files(paper_schedules):
        metrics = json.loads(path.read_text())["metrics"]
        arch = "pixart-sigma" if path.parent.name == "pixart_sigma_256" else "pixart-alpha"
        report = count_macs(arch, 256, 256, convention="paper").report(CacheSchedule.load(path))
        assert abs(report["total_macs"] / metrics["total_macs"] - 1) < 1e-3, path
        published = [metrics["by_inference_step"][k]["macs"] for k in sorted(metrics["by_inference_step"])]
        assert len(report["per_step"]) == len(published)
        for ours, theirs in zip(report["per_step"], published):
            assert abs(ours / theirs - 1) < 1e-3, path


def test_cli_json_matches_the_paper_file(paper_schedules, capsys):
    path = paper_schedules / "pixart_alpha_256" / "ours_fastest.json"
    code = main(["macs", "--arch", "pixart-alpha", "--height", "256", "--width", "256", "--schedule", str(path),
                 "--convention", "paper", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    metrics = json.loads(path.read_text())["metrics"]
    assert abs(report["total_macs"] / metrics["total_macs"] - 1) < 1e-3
    assert report["full_macs"] == 20 * 285_689_806_848
    assert 4.85 < report["speedup"] < 4.87  # the paper's 4.86x
    assert len(report["per_step"]) == 20


def test_full_convention_adds_exactly_the_attention_core():
    paper = count_macs("pixart-alpha", 256, 256, convention="paper")
    full = count_macs("pixart-alpha", 256, 256, convention="full", text_len=120)
    # QK^T and AV: batch 2, 16 heads of 72, 256 image tokens; self-attention over 256 keys, cross over 120
    per_block = 2 * 16 * 72 * 2 * (256 * 256 + 256 * 120)
    assert full.full_step_macs - paper.full_step_macs == 28 * per_block
    assert full.outside_macs == paper.outside_macs == 1_498_447_872
    assert torch.equal(full.component_macs[:, 2], paper.component_macs[:, 2])  # ff has no attention core


def test_schedule_cost_is_outside_plus_what_it_recomputes():
    table = count_macs("pixart-alpha", 512, 256)
    schedule = table.full_schedule(3)
    bits = torch.zeros(schedule.shape, dtype=torch.bool)
    bits[1, 4, 1] = True
    per_step = table.step_macs(schedule.like(bits))
    assert per_step[0] == table.full_step_macs  # step 0 always computes
    assert per_step[1] == table.outside_macs + int(table.component_macs[4, 1])
    assert per_step[2] == table.outside_macs
    assert table.full_step_macs > count_macs("pixart-alpha", 256, 256).full_step_macs


def test_module_folder_and_preset_agree(tmp_path, capsys):
    transformer = tiny_pixart_transformer(num_layers=2)
    from_module = count_macs(transformer, 32, 32, text_len=7)
    transformer.save_pretrained(tmp_path / "pipe" / "transformer")
    from_folder = count_macs(str(tmp_path / "pipe"), 32, 32, text_len=7)
    assert from_module.full_step_macs == from_folder.full_step_macs > 0
    assert torch.equal(from_module.component_macs, from_folder.component_macs)
    assert bool((from_module.component_macs > 0).all())
    assert main(["macs", "--model", str(tmp_path / "pipe"), "--height", "32", "--width", "32", "--text-len", "7",
                 "--steps", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["full_macs"] == 4 * from_module.full_step_macs


def test_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="layout"):
        count_macs("pixart-alpha", 256, 256).step_macs(CacheSchedule.from_array(torch.ones(2, 3, 3)))
    with pytest.raises(ValueError, match="unknown MAC convention"):
        count_macs("pixart-alpha", 256, 256, convention="fast")
    assert main(["macs", "--arch", "pixart-beta"]) == 1
    assert "unknown architecture preset 'pixart-beta'" in capsys.readouterr().err
    assert main(["macs", "--arch", "pixart-alpha", "--height", "100"]) == 1
    assert "multiples of 16" in capsys.readouterr().err
    assert main(["macs", "--model", str(tmp_path / "missing")]) == 1
    assert "model folder not found" in capsys.readouterr().err


def test_layout_of_a_live_model_matches_the_cost_table():
    transformer = tiny_pixart_transformer(num_layers=2)
    layout = ecad.model_layout(transformer)
    table = count_macs(transformer, 32, 32, text_len=7)
    assert layout.block_names == table.block_names and torch.equal(layout.exists, table.exists)


def test_paper_convention_reproduces_every_flux_file_at_its_own_resolution(paper_schedules):
    files = sorted(p for p in paper_schedules.glob("flux*/*.json"))
    assert len(files) == 4
    for path in files:
        data = json.loads(path.read_text())
        height, width = data["config"]["height"], data["config"]["width"]
        table = count_macs("flux-dev", height, width, convention="paper")
        report = table.report(CacheSchedule.load(path))
        metrics = data["metrics"]
        assert abs(report["total_macs"] / metrics["total_macs"] - 1) < 1e-3, path
        published = [metrics["by_inference_step"][k]["macs"] for k in sorted(metrics["by_inference_step"])]
        assert all(abs(ours / theirs - 1) < 1e-3 for ours, theirs in zip(report["per_step"], published, strict=True))
        assert report["pruned_total_macs"] <= report["total_macs"]
    assert abs(count_macs("flux-dev", 256, 256, convention="paper").full_step_macs / 9934.58e9 - 1) < 1e-6
    assert abs(count_macs("flux-dev", 1024, 1024, convention="paper").full_step_macs / 59.51e12 - 1) < 1e-3


@pytest.mark.parametrize("arch", ["flux-dev", "flux-schnell", "sd3-medium", "sd3.5-medium", "sd3.5-large", "sana-1600m"])
def test_presets_count_at_any_resolution(arch):
    small, wide = count_macs(arch, 256, 256), count_macs(arch, 256, 512)
    assert 0 < small.outside_macs < small.full_step_macs < wide.full_step_macs
    assert bool((small.component_macs[small.exists] > 0).all())
    assert small.full_schedule(20).num_blocks == len(small.block_names)


def test_flux_guidance_embedding_is_the_only_dev_schnell_difference():
    dev, schnell = (count_macs(a, 256, 256, convention="paper") for a in ("flux-dev", "flux-schnell"))
    assert torch.equal(dev.component_macs, schnell.component_macs)
    assert dev.outside_macs > schnell.outside_macs
