"""A transformer no adapter knows: ``enable_cache`` finds its block lists and their attention and feed-forward
modules by itself, logs the layout, and the layout can be saved and reloaded; a given adapter still wins."""

from __future__ import annotations

import logging

import pytest
import torch
from diffusers import AuraFlowTransformer2DModel
from tiny_pipelines import NEW_FAMILIES, tiny_pixart_transformer, tiny_sana_transformer

import ecad
from ecad.adapters import ADAPTERS, AutoAdapter, GenericAdapter, UnsupportedModelError, discover_adapter

STEPS = 4


def same(a, b) -> bool:
    return (a.block_names, a.component_names, a.feeds) == (b.block_names, b.component_names, b.feeds) and torch.equal(
        a.exists, b.exists
    )


@pytest.fixture(scope="module")
def auraflow():
    torch.manual_seed(0)
    model = AuraFlowTransformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_mmdit_layers=1,
        num_single_dit_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=16,
        caption_projection_dim=16,
        out_channels=4,
        pos_embed_max_size=64,
    ).eval()
    latents, text = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 16)

    @torch.no_grad()
    def run() -> torch.Tensor:
        return torch.cat(
            [
                model(latents, text, timestep=torch.full((2,), t), return_dict=False)[0].flatten()
                for t in (999.0, 750.0, 500.0, 250.0)
            ]
        )

    return model, run


def test_an_unknown_transformer_is_laid_out_logged_and_cached(auraflow, caplog):
    model, run = auraflow
    assert not any(a.matches(model) for a in ADAPTERS)
    reference = run()
    with caplog.at_level(logging.WARNING, logger="ecad.adapters"):
        full = ecad.full_schedule(model, STEPS)
    assert full.block_names == ("0", "single_transformer_blocks.0", "single_transformer_blocks.1")
    assert full.component_names == ("attn", "ff", "ff_context")
    assert full.exists.tolist() == [[True, True, True], [True, True, False], [True, True, False]]
    assert "joint_transformer_blocks: blocks 0.., components attn, ff, ff_context" in caplog.text
    with ecad.enable_cache(model, full) as handle:
        assert torch.equal(run(), reference)
    assert handle.counts["computed"] == 7 * STEPS
    bits = full.recompute.clone()
    bits[1:, :, 1] = False  # every feed-forward replays after step 0
    with ecad.enable_cache(model, full.like(bits)) as handle:
        cached = run()
    assert handle.counts["reused"] == 3 * (STEPS - 1) and not torch.equal(cached, reference)
    assert torch.equal(run(), reference)


def test_the_found_layout_saves_reloads_and_a_given_adapter_wins(auraflow, tmp_path):
    model, _ = auraflow
    found = discover_adapter(model)
    found.save(tmp_path / "layout.json")
    loaded = AutoAdapter.load(tmp_path / "layout.json")
    assert loaded.to_dict() == found.to_dict()
    assert same(ecad.model_layout(model, loaded), ecad.model_layout(model))
    override = ecad.model_layout(model, GenericAdapter("single_transformer_blocks", ("attn",)))
    assert override.block_names == ("0", "1") and override.component_names == ("attn",)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UnsupportedModelError, match="not a layout file"):
        AutoAdapter.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "build",
    [
        tiny_pixart_transformer,
        tiny_sana_transformer,
        *(NEW_FAMILIES[name][0] for name in ("wan", "qwen-image", "flux2", "ltx2")),
    ],
)
def test_the_found_layout_equals_the_hand_written_one(build):
    built = build()
    model = built[0] if isinstance(built, tuple) else built
    paths = [
        {path for *_, path, _ in adapter.components(model)}
        for adapter in (discover_adapter(model), ecad.get_adapter(model))
    ]
    assert (
        paths[0] == paths[1]
    )  # the same modules (block names may differ: 'single_0' vs 'single_transformer_blocks.0')


def test_an_observed_call_is_counted_through_the_found_layout(auraflow):
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    from ecad.cost.counting import count_calls
    from ecad.cost.observe import TransformerCall

    model, _ = auraflow
    inputs = {
        "hidden_states": torch.randn(2, 4, 8, 8),
        "encoder_hidden_states": torch.randn(2, 5, 16),
        "timestep": torch.full((2,), 500.0),
    }
    table = count_calls(model, [TransformerCall.of((), inputs)], 16, 16)
    mapping = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *args, out_shape=None, **kwargs: (
            sdpa_flop_count(q, k, v)
        )
    }
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(**inputs)
    assert table.full_step_macs == sum(counter.get_flop_counts()["Global"].values()) // 2
    assert bool((table.component_macs[table.exists] > 0).all())


@pytest.mark.slow  # builds every diffusers transformer class on the meta device (about 15 s)
def test_the_committed_reach_is_what_the_benchmark_finds_now():
    import json
    import subprocess
    import sys
    from pathlib import Path

    import diffusers

    root = Path(__file__).resolve().parents[1]
    committed = json.loads((root / "benchmarks" / "results" / "auto_layout.jsonl").read_text().splitlines()[-1])
    if committed["diffusers"] != diffusers.__version__:
        pytest.skip(f"the committed reach is for diffusers {committed['diffusers']}")
    run = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "auto_layout.py")], capture_output=True, text=True, check=True
    )
    now = json.loads(run.stdout.splitlines()[-1])
    keys = ("summary", "failures", "unchecked", "not_built")
    assert {k: now[k] for k in keys} == {k: committed[k] for k in keys}
