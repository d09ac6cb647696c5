"""CacheSchedule: construction, validation, both JSON formats, resampling, statistics and `ecad show`."""

import json

import pytest
import torch

from ecad import CacheSchedule, ScheduleError
from ecad.cli import main
from ecad.models.macs import count_macs


def make(steps=5, blocks=4, comps=("attn1", "attn2", "ff"), seed=0, exists=None):
    generator = torch.Generator().manual_seed(seed)
    bits = torch.rand(steps, blocks, len(comps), generator=generator) < 0.5
    if exists is not None:
        bits &= exists
    return CacheSchedule.from_array(bits, component_names=comps, exists=exists, metadata={"model": "test"})


def test_own_format_round_trip_keeps_every_bit(tmp_path):
    exists = torch.ones(4, 3, dtype=torch.bool)
    exists[3, 2] = False
    schedule = make(exists=exists)
    schedule.save(tmp_path / "s.json")
    loaded = CacheSchedule.load(tmp_path / "s.json")
    assert loaded == schedule
    assert torch.equal(loaded.recompute, schedule.recompute)
    assert torch.equal(loaded.exists, exists)
    assert loaded.metadata == {"model": "test"}
    text = (tmp_path / "s.json").read_text()
    assert '"format": "ecad.schedule/1"' in text
    # one line per block, the missing component simply absent
    assert '"3": {"attn1": ' in text and '"ff"' not in text.split('"3": ')[1].split("\n")[0]


def test_paper_format_round_trip_is_exact(paper_schedules, tmp_path):
    files = sorted(paper_schedules.glob("*/*.json"))
    assert files
    for path in files:
        original = json.loads(path.read_text())
        schedule = CacheSchedule.load(path)
        assert schedule.num_steps == original["cache_schedule"]["num_inference_steps"]
        schedule.save(tmp_path / "own.json")
        again = CacheSchedule.load(tmp_path / "own.json")
        assert again == schedule
        again.export_paper(tmp_path / "paper.json")
        assert json.loads((tmp_path / "paper.json").read_text()) == original, path


def test_paper_pixart_bits_match_the_file(paper_schedules):
    path = paper_schedules / "pixart_alpha_256" / "ours_fastest.json"
    raw = json.loads(path.read_text())["cache_schedule"]["schedule"]
    schedule = CacheSchedule.load(path)
    assert schedule.shape == (20, 28, 3)
    assert schedule.component_names == ("attn1", "attn2", "ff")
    assert int(schedule.recompute.sum()) == 324
    assert bool(schedule.recompute[7, 12, 1]) == raw["007"]["12"]["attn2"]
    # step 0 has reuse bits in the file, but always computes
    assert not bool(schedule.recompute[0].all())
    assert bool(schedule.effective()[0].all())


def test_flux_paper_file_loads_with_the_flux_adapters_layout(paper_schedules):
    path = paper_schedules / "flux_256" / "ours_fast.json"
    raw = json.loads(path.read_text())["cache_schedule"]["schedule"]
    schedule = CacheSchedule.load(path)
    assert schedule.shape == (20, 57, 5)
    assert schedule.component_names == ("attn", "ff", "ff_context", "proj_mlp", "proj_out")
    assert schedule.block_names[:2] == ("0", "1") and schedule.block_names[19] == "single_0"
    # the same exists mask as the FLUX.1 transformer itself (built on the meta device)
    assert torch.equal(schedule.exists, count_macs("flux-dev", 256, 256, convention="paper").exists)
    assert int(schedule.exists.sum()) == 57 * 3
    c = schedule.component_names.index
    for step, block, b, ours, theirs in [
        ("005", "3", 3, "attn", "full_attn"),
        ("011", "7", 7, "ff_context", "full_ff_context"),
        ("005", "single_4", 23, "attn", "single_attn"),
        ("013", "single_30", 49, "proj_out", "single_proj_out"),
    ]:
        assert bool(schedule.recompute[int(step), b, c(ours)]) == raw[step][block][theirs]
    assert sum(v for s in raw.values() for comps in s.values() for v in comps.values()) == int(schedule.recompute.sum())
    exported = schedule.to_paper_dict()["cache_schedule"]["schedule"]
    assert list(exported["000"]["single_0"]) == ["single_attn", "single_proj_mlp", "single_proj_out"]


def test_validation_errors_name_the_problem():
    with pytest.raises(ScheduleError, match=r"shape \[steps, blocks, components\]"):
        CacheSchedule.from_array(torch.ones(4, 3))
    with pytest.raises(ScheduleError, match="3 component names"):
        CacheSchedule.from_array(torch.ones(2, 3, 2), component_names=("a", "b", "c"))
    with pytest.raises(ScheduleError, match="duplicate component names"):
        CacheSchedule.from_array(torch.ones(2, 3, 2), component_names=("a", "a"))
    exists = torch.ones(3, 2, dtype=torch.bool)
    exists[0, 0] = False
    with pytest.raises(ScheduleError, match="do not exist"):
        CacheSchedule.from_array(torch.ones(2, 3, 2), component_names=("a", "b"), exists=exists)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ScheduleError, match="not found"):
        CacheSchedule.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ScheduleError, match="not valid JSON"):
        CacheSchedule.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ScheduleError, match="unknown schedule format"):
        CacheSchedule.load(tmp_path / "other.json")
    data = make().to_dict()
    data["blocks"]["0"]["attn1"] = "10"
    (tmp_path / "short.json").write_text(json.dumps(data))
    with pytest.raises(ScheduleError, match="expected 5 characters"):
        CacheSchedule.load(tmp_path / "short.json")


def test_resample_rule():
    schedule = make(steps=4)
    assert schedule.resample(4) == schedule
    doubled = schedule.resample(8)
    assert doubled.num_steps == 8
    for t, source in enumerate([0, 0, 1, 1, 2, 2, 3, 3]):  # round(t * 3 / 7)
        assert torch.equal(doubled.recompute[t], schedule.recompute[source])
    halved = schedule.resample(2)
    assert torch.equal(halved.recompute[0], schedule.recompute[0])
    assert torch.equal(halved.recompute[1], schedule.recompute[3])
    assert doubled.metadata["resampled_from_steps"] == 4
    twenty = make(steps=20, seed=4)
    assert torch.equal(twenty.resample(28).resample(20).recompute, twenty.recompute)


def test_full_and_stats():
    full = CacheSchedule.full(4, ["0", "1"], ["attn1", "ff"])
    assert bool(full.recompute.all())
    assert full.stats()["recompute_fraction"] == 1.0
    half = full.like(torch.tensor([[[1, 1], [1, 1]], [[0, 0], [0, 0]], [[1, 0], [1, 0]], [[0, 0], [0, 0]]]))
    stats = half.stats()
    assert stats["recompute_bits"] == 6
    assert stats["recompute_fraction"] == 6 / 16
    assert stats["per_component_fraction"] == {"attn1": 0.5, "ff": 0.25}
    assert stats["per_step_fraction"] == [1.0, 0.0, 0.5, 0.0]
    assert stats["cached_steps"] == 2


def test_show_prints_picture_and_stats(tmp_path, capsys):
    schedule = make(steps=6, blocks=2)
    schedule.save(tmp_path / "s.json")
    assert main(["show", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip().startswith(("attn1 ", "attn2 ", "ff "))]
    assert len(rows) == 6
    row = rows[0].split()[-1]
    assert row == "".join("█" if v else "·" for v in schedule.recompute[:, 0, 0].tolist())
    assert "recomputes" in out
    assert main(["show", str(tmp_path / "s.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 6
    assert main(["show", str(tmp_path / "nope.json")]) == 1
    assert "schedule file not found" in capsys.readouterr().err
