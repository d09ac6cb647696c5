"""Family specifics: FLUX's dead-recompute pruning, SD3's exists mask, the generic adapter, and schedule transfer
across resolutions and step counts (Python API and `ecad generate`)."""

from __future__ import annotations

import logging

import pytest
import torch
from tiny_pipelines import tiny_flux_pipeline, tiny_sana_transformer, tiny_sd3_pipeline

import ecad
from ecad import GenericAdapter, UnsupportedModelError
from ecad.adapters import ADAPTERS
from ecad.cli import main
from ecad.models.macs import count_macs
from ecad.schedule.pruning import prune_dead


@pytest.fixture(scope="module")
def flux():
    return tiny_flux_pipeline()


def flux_images(pipe, steps=4, size=16, **kwargs):
    return pipe(
        ["w1 w2"],
        num_inference_steps=steps,
        height=size,
        width=size,
        guidance_scale=3.5,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        max_sequence_length=8,
        **kwargs,
    ).images


def test_prune_rule_on_one_source_consumer_pair():
    # steps:            0  1  2  3  4  5
    source = torch.tensor([1, 1, 1, 0, 1, 1], dtype=torch.bool)
    consumer = torch.tensor([1, 0, 0, 1, 0, 0], dtype=torch.bool)
    bits = torch.stack([source, consumer], dim=1).unsqueeze(1)  # [steps, 1 block, 2 components]
    pruned = prune_dead(bits, [(0, 0, 1)])
    # step 1 is overwritten at step 2 before anyone reads it; step 2 is read at step 3 (consumer recomputes while
    # the source reuses); steps 4 and 5 are never read
    assert pruned[:, 0, 0].tolist() == [True, False, True, False, False, False]
    assert torch.equal(pruned[:, 0, 1], consumer)


def test_flux_pruning_is_bit_exact_and_computes_less(flux):
    full = ecad.full_schedule(flux, 4)
    layout = ecad.model_layout(flux)
    assert layout.feeds  # attn and proj_mlp feed only proj_out in single blocks
    bits = full.recompute.clone()
    proj_out = full.component_names.index("proj_out")
    bits[1:3, :, proj_out] = False  # replay proj_out at steps 1-2 while attn and proj_mlp still "recompute"
    schedule = full.like(bits)
    with ecad.enable_cache(flux, schedule, prune=False) as handle:
        unpruned = flux_images(flux)
    computed_unpruned = handle.counts["computed"]
    with ecad.enable_cache(flux, schedule) as handle:
        pruned = flux_images(flux)
    assert torch.equal(pruned, unpruned)
    # 2 single blocks x 2 sources x 2 steps skipped; step 2's are dead too since step 3 recomputes both
    assert computed_unpruned - handle.counts["computed"] == 8
    table = count_macs(flux.transformer, 16, 16, text_len=8)
    report = table.report(schedule)
    assert report["total_macs"] == report["pruned_total_macs"] < report["unpruned_total_macs"]
    assert report["unpruned_total_macs"] - report["pruned_total_macs"] == 2 * int(
        table.component_macs[2:, [full.component_names.index("attn"), full.component_names.index("proj_mlp")]].sum()
    )


def test_sd3_missing_pairs_are_masked_cost_nothing_and_cannot_be_switched_on():
    pipe = tiny_sd3_pipeline()
    layout = ecad.model_layout(pipe)
    attn2, ff_context = layout.component_names.index("attn2"), layout.component_names.index("ff_context")
    assert layout.exists[:, attn2].tolist() == [True, False, False]  # dual attention only in block 0
    assert layout.exists[:, ff_context].tolist() == [True, True, False]  # last block is context-pre-only
    everything = ecad.full_schedule(pipe, 3).like(torch.ones(3, 3, 4, dtype=torch.bool))
    assert not bool(everything.recompute[:, ~layout.exists].any())
    with pytest.raises(ecad.ScheduleError, match="do not exist"):
        ecad.CacheSchedule(torch.ones(3, 3, 4), layout.block_names, layout.component_names, layout.exists)
    table = count_macs("sd3.5-medium", 1024, 1024)
    assert table.exists[:, attn2].tolist() == [True] * 13 + [False] * 11
    assert not bool(table.exists[23, ff_context]) and bool(table.exists[:23, ff_context].all())
    assert bool((table.component_macs[~table.exists] == 0).all()) and bool(
        (table.component_macs[table.exists] > 0).all()
    )


def test_generic_adapter_by_pattern_and_registration():
    transformer = tiny_sana_transformer()
    by_pattern = ecad.model_layout(transformer, GenericAdapter("transformer_blocks", "attn?|ff"))
    assert by_pattern.component_names == ("attn1", "attn2", "ff")
    assert ecad.model_layout(transformer, GenericAdapter("transformer_blocks", "attn*")).component_names == (
        "attn1",
        "attn2",
    )
    with pytest.raises(UnsupportedModelError, match="no child .* matches 'mlp'"):
        ecad.model_layout(transformer, GenericAdapter("transformer_blocks", "mlp"))
    with pytest.raises(UnsupportedModelError, match="does not fit SanaTransformer2DModel"):
        ecad.model_layout(transformer, GenericAdapter("blocks", ("attn1",)))
    # registered first, a generic adapter takes over its class
    adapter = ecad.register_adapter(
        GenericAdapter("transformer_blocks", ("ff",), transformer_classes=("SanaTransformer2DModel",))
    )
    try:
        assert ecad.model_layout(transformer).component_names == ("ff",)
    finally:
        ADAPTERS.remove(adapter)
    assert ecad.model_layout(transformer).component_names == ("attn1", "attn2", "ff")  # the Sana adapter


def test_a_schedule_applies_at_another_resolution_as_is(flux):
    schedule = ecad.full_schedule(flux, 4)
    schedule = schedule.like(torch.rand(schedule.shape, generator=torch.Generator().manual_seed(0)) < 0.5)
    for size in (16, 32):
        reference = flux_images(flux, size=size)
        with ecad.enable_cache(flux, schedule):
            cached = flux_images(flux, size=size)
        assert cached.shape[-1] == size and not torch.equal(cached, reference)


def test_resample_20_to_28_steps_says_so(flux, caplog):
    schedule = ecad.full_schedule(flux, 20)
    schedule = schedule.like(torch.rand(schedule.shape, generator=torch.Generator().manual_seed(0)) < 0.5)
    with caplog.at_level(logging.INFO, logger="ecad"):
        with ecad.enable_cache(flux, schedule, resample=True) as handle:
            implicit = flux_images(flux, steps=28)
        assert handle.state.active.num_steps == 28
    assert "resampled the 20-step schedule to this call's 28 steps" in caplog.text
    with ecad.enable_cache(flux, schedule.resample(28)):
        assert torch.equal(flux_images(flux, steps=28), implicit)


def test_generate_cli_runs_flux_with_a_resampled_schedule(flux, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    flux.save_pretrained(tmp_path / "flux")
    schedule = ecad.full_schedule(flux, 20)
    schedule.like(torch.rand(schedule.shape, generator=torch.Generator().manual_seed(0)) < 0.5).save(
        tmp_path / "s.json"
    )
    args = [
        "generate",
        "--model",
        str(tmp_path / "flux"),
        "--schedule",
        str(tmp_path / "s.json"),
        "--prompt",
        "w1",
        "--steps",
        "28",
        "--height",
        "16",
        "--width",
        "16",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "x.png"),
    ]
    assert main(args) == 1  # 28 steps, 20-step schedule: refused without --resample
    with caplog.at_level(logging.INFO, logger="ecad"):
        assert main([*args, "--resample"]) == 0
    assert "resampled the 20-step schedule to this call's 28 steps" in caplog.text
    assert (tmp_path / "x.png").is_file()
