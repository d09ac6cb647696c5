"""The MAC cost model: the paper's numbers, the true cost, per-component accounting and `ecad macs`."""

import json

import pytest
import torch
from tiny_pipelines import (
    tiny_flux_pipeline,
    tiny_pixart_pipeline,
    tiny_pixart_transformer,
    tiny_sana_pipeline,
    tiny_sd3_pipeline,
)
from torch.utils.flop_counter import FlopCounterMode

import ecad
import ecad.cost.observe
import ecad.models.loading
from ecad import CacheSchedule
from ecad.cli import main
from ecad.cost.counting import count_pipeline_macs
from ecad.cost.observe import probe_call
from ecad.models.loading import load_pipeline
from ecad.models.macs import count_macs
from ecad.models.tiny_shapes import GUIDANCE_SCALE


def pixart_files(root):
    files = sorted(p for p in root.glob("*/*.json") if p.parent.name.startswith("pixart"))
    assert len(files) == 13  # with the 4 FLUX files: all 17 published schedules
    return files


def published_per_step(metrics):
    return [metrics["by_inference_step"][k]["macs"] for k in sorted(metrics["by_inference_step"])]


# The paper convention by hand (batch 2, attention core not counted), layer by layer from diffusers' modules.
def pixart_paper_macs(tokens=256, text=120, hidden=1152, blocks=28, latent_channels=4, patch=2, out_channels=8):
    """(outside, full step) MACs of PixArt-XL-2: outside = patch embedding, timestep MLP (256 -> D -> D), adaLN-single
    (D -> 6D), caption projection (4096 -> D -> D per text token), final projection; per block attn1 = 4 D^2 per
    image token, attn2 = 2 D^2 per image token (q, out) + 2 D^2 per text token (k, v), ff = 2 x 4 D^2 per image
    token."""
    d2 = hidden * hidden
    outside = (
        tokens * hidden * latent_channels * patch * patch
        + 256 * hidden
        + d2
        + 6 * d2
        + text * (4096 * hidden + d2)
        + tokens * hidden * patch * patch * out_channels
    )
    block = 4 * d2 * tokens + (2 * d2 * tokens + 2 * d2 * text) + 2 * 4 * d2 * tokens
    return 2 * outside, 2 * (outside + blocks * block)


def flux_paper_macs(tokens, text=512, hidden=3072, mlp=12288, double=19, single=38):
    """Full-step MACs of FLUX.1-dev: double blocks (two adaLN-zero D -> 6D, joint attention q/k/v/out on both streams,
    ff and ff_context D -> 4D -> D), single blocks (adaLN D -> 3D, q/k/v and proj_mlp on all tokens, proj_out from
    D + 4D), and outside (x/context embedders, timestep/guidance/pooled-text MLPs, norm_out D -> 2D, proj_out)."""
    d2, all_tokens = hidden * hidden, tokens + text
    double_block = 2 * 6 * d2 + 4 * d2 * all_tokens + 2 * hidden * mlp * all_tokens
    single_block = 3 * d2 + (3 * d2 + hidden * mlp + (hidden + mlp) * hidden) * all_tokens
    outside = (
        64 * hidden * tokens
        + 4096 * hidden * text
        + 2 * (256 * hidden + d2)
        + 768 * hidden
        + d2
        + 2 * d2
        + hidden * 64 * tokens
    )
    return 2 * (outside + double * double_block + single * single_block)


def test_paper_convention_reproduces_every_pixart_file(paper_schedules):
    for path in pixart_files(paper_schedules):
        data = json.loads(path.read_text())
        metrics = data["metrics"]
        sigma = (
            path.parent.name == "pixart_sigma_256" or data["config"].get("pipeline", {}).get("name") == "pixart_sigma"
        )
        report = count_macs("pixart-sigma" if sigma else "pixart-alpha", 256, 256, convention="paper").report(
            CacheSchedule.load(path)
        )
        assert report["total_macs"] == metrics["total_macs"], path
        assert report["per_step"] == published_per_step(metrics), path


def test_cli_json_matches_the_paper_file(paper_schedules, capsys):
    path = paper_schedules / "pixart_alpha_256" / "ours_fastest.json"
    code = main(
        [
            "macs",
            "--arch",
            "pixart-alpha",
            "--height",
            "256",
            "--width",
            "256",
            "--schedule",
            str(path),
            "--convention",
            "paper",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    metrics = json.loads(path.read_text())["metrics"]
    assert report["total_macs"] == metrics["total_macs"] and report["per_step"] == published_per_step(metrics)
    outside, full_step = pixart_paper_macs()
    assert full_step == 285_689_806_848 == metrics["by_inference_step"]["000"]["macs"]
    assert report["full_macs"] == 20 * full_step and report["outside_macs_per_step"] == outside
    assert round(report["mac_speedup"], 2) == 4.86  # the paper's figure


def test_full_convention_adds_exactly_the_attention_core():
    paper = count_macs("pixart-alpha", 256, 256, convention="paper")
    full = count_macs("pixart-alpha", 256, 256, convention="full", text_len=120)
    # QK^T and AV: batch 2, 16 heads of 72, 256 image tokens; self-attention over 256 keys, cross over 120
    per_block = 2 * 16 * 72 * 2 * (256 * 256 + 256 * 120)
    assert full.full_step_macs - paper.full_step_macs == 28 * per_block
    assert full.outside_macs == paper.outside_macs == pixart_paper_macs()[0] == 1_498_447_872
    assert paper.full_step_macs == pixart_paper_macs()[1]
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
    assert (
        main(
            [
                "macs",
                "--model",
                str(tmp_path / "pipe"),
                "--height",
                "32",
                "--width",
                "32",
                "--text-len",
                "7",
                "--steps",
                "4",
                "--json",
            ]
        )
        == 0
    )
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


@pytest.mark.slow
def test_paper_convention_reproduces_every_flux_file_at_its_own_resolution(paper_schedules):
    files = sorted(p for p in paper_schedules.glob("flux*/*.json"))
    assert len(files) == 4
    for path in files:
        data = json.loads(path.read_text())
        height, width = data["config"]["height"], data["config"]["width"]
        table = count_macs("flux-dev", height, width, convention="paper")
        report = table.report(CacheSchedule.load(path))
        metrics = data["metrics"]
        assert report["total_macs"] == metrics["total_macs"], path
        assert report["per_step"] == published_per_step(metrics), path
        assert table.full_step_macs == flux_paper_macs((height // 16) * (width // 16)) == report["per_step"][0]
        assert report["pruned_total_macs"] <= report["total_macs"]
    assert flux_paper_macs(256) == 9_934_575_501_312  # the README's 9934.58 GMAC; 59.51 TMAC at 1024 px:
    assert flux_paper_macs(4096) == 59_512_255_414_272


@pytest.mark.parametrize(
    "arch", ["flux-dev", "flux-schnell", "sd3-medium", "sd3.5-medium", "sd3.5-large", "sana-1600m"]
)
@pytest.mark.slow
def test_presets_count_at_any_resolution(arch):
    small, wide = count_macs(arch, 256, 256), count_macs(arch, 256, 512)
    assert 0 < small.outside_macs < small.full_step_macs < wide.full_step_macs
    assert bool((small.component_macs[small.exists] > 0).all())
    assert small.full_schedule(20).num_blocks == len(small.block_names)


def test_flux_guidance_embedding_is_the_only_dev_schnell_difference():
    dev, schnell = (count_macs(a, 256, 256, convention="paper") for a in ("flux-dev", "flux-schnell"))
    assert torch.equal(dev.component_macs, schnell.component_macs)
    assert dev.outside_macs > schnell.outside_macs


# ---------------------------------------------------------------- cost at the shapes of the real call
def _cpu_flash_attention(query, key, value, *args, out_shape=None, **kwargs):
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _count_calls(pipe, call) -> list[int]:
    """FlopCounterMode over each transformer call ``call()`` makes (on the CPU, attention runs as
    ``_scaled_dot_product_flash_attention_for_cpu``, which the counter must be told about)."""
    counters: list[FlopCounterMode] = []

    def enter(*_):
        counters.append(
            FlopCounterMode(
                display=False,
                custom_mapping={torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention},
            )
        )
        counters[-1].__enter__()

    def leave(*_):
        counters[-1].__exit__(None, None, None)

    handles = [pipe.transformer.register_forward_pre_hook(enter), pipe.transformer.register_forward_hook(leave)]
    try:
        call()
    finally:
        for handle in handles:
            handle.remove()
    return [sum(c.get_flop_counts().get("Global", {}).values()) // 2 for c in counters]


REAL_CALLS = {  # pipeline, size, guidance, extra call arguments
    "pixart": (lambda: tiny_pixart_pipeline(), 32, 4.5, {}),
    "flux": (lambda: tiny_flux_pipeline(), 32, 3.5, {}),
    "flux-true-cfg": (lambda: tiny_flux_pipeline(), 32, 3.5, {"negative_prompt": "w5", "true_cfg_scale": 2.0}),
    "sd3": (lambda: tiny_sd3_pipeline(), 32, 4.0, {}),
    "sana": (lambda: tiny_sana_pipeline(), 64, 4.5, {"complex_human_instruction": None}),
    "tiny-shapes": (lambda: load_pipeline("tiny-shapes", device="cpu"), 64, GUIDANCE_SCALE, {}),
}


@pytest.mark.parametrize("name", list(REAL_CALLS))
def test_full_step_macs_equal_flop_counter_over_the_real_call(name):
    build, size, guidance, extra = REAL_CALLS[name]
    pipe = build()
    table = count_pipeline_macs(pipe, size, size, guidance_scale=guidance, **extra)
    call = probe_call(pipe, size, size, guidance, **extra)
    real = _count_calls(pipe, lambda: ecad.cost.observe.observe_calls(pipe, call))  # up to the first scheduler step
    assert table.full_step_macs == sum(real)
    assert table.calls_per_step == (2 if name == "flux-true-cfg" else 1)
    assert table.batch_size == (1 if name.startswith("flux") else 2)  # CFG batched into one call, FLUX: none / true


@pytest.mark.parametrize("name", list(REAL_CALLS))
def test_predicted_step_macs_equal_what_the_runtime_runs(name):
    """Per step, the cost model's MACs of a schedule (prune=True: dead recomputes and replayed components' inputs
    left out) equal FlopCounterMode over the transformer calls ecad's runtime really makes in that step."""
    build, size, guidance, extra = REAL_CALLS[name]
    pipe = build()
    table = count_pipeline_macs(pipe, size, size, guidance_scale=guidance, **extra)
    steps = 5
    full = ecad.full_schedule(pipe, steps)
    schedule = full.like(torch.rand(full.shape, generator=torch.Generator().manual_seed(7)) < 0.4)
    kwargs = {**ecad.models.loading.pipeline_call_kwargs(pipe), **extra}
    with ecad.enable_cache(pipe, schedule):
        real = _count_calls(
            pipe,
            lambda: pipe(
                [ecad.cost.observe.PROBE_PROMPT],
                num_inference_steps=steps,
                height=size,
                width=size,
                guidance_scale=guidance,
                output_type="latent",
                **kwargs,
            ),
        )
    per_call = table.calls_per_step
    measured = [sum(real[s * per_call : (s + 1) * per_call]) for s in range(steps)]
    assert measured == table.step_macs(schedule)
    assert table.step_macs(schedule) == table.step_macs(schedule, prune=True)
    assert sum(measured) < table.full_step_macs * steps


def test_macs_cli_observes_a_pipeline_folder_without_its_weights(tmp_path, capsys):
    """``ecad macs --model FOLDER`` builds the pipeline from its configs with fake weights and counts the call it
    makes: the same table as the real pipeline's observed call (here PixArt pads its prompts to 120 T5 tokens)."""
    pipe = tiny_pixart_pipeline(num_layers=2)
    pipe.save_pretrained(tmp_path / "pipe")
    real = count_pipeline_macs(pipe, 32, 32, guidance_scale=4.5, images=3)
    assert (
        main(
            [
                "macs",
                "--model",
                str(tmp_path / "pipe"),
                "--height",
                "32",
                "--width",
                "32",
                "--guidance",
                "4.5",
                "--images",
                "3",
                "--steps",
                "4",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["full_macs"] == 4 * real.full_step_macs
    assert (report["batch_size"], report["text_len"]) == (6, 120)
    assert "observed pipeline call" in report["counted"]
    assert main(["macs", "--model", str(tmp_path / "pipe"), "--text-len", "7"]) == 1
    assert "observed from its call" in capsys.readouterr().err


def test_tiny_shapes_cost_is_counted_at_its_real_shapes(capsys):
    """tiny-shapes: 4x VAE (16x16 latents, 64 tokens), 16 text tokens; cross-attention is 17% of a block's MACs."""
    assert main(["macs", "--model", "tiny-shapes", "--height", "64", "--width", "64", "--guidance", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["batch_size"], report["text_len"]) == (2, 16)
    table = count_macs("tiny-shapes", 64, 64, guidance_scale=GUIDANCE_SCALE)
    block = table.component_macs[0]
    assert 0.17 < float(block[1] / block.sum()) < 0.18
    assert report["full_macs"] == 20 * table.full_step_macs


def test_a_schedule_file_is_counted_at_its_recorded_settings(tmp_path, capsys):
    """Like generate and eval, macs takes size and guidance from the file (a 64 px tiny-shapes schedule counted at
    the default 256 px gave another speedup), says so, and prints MACs in the unit their size reads in."""
    from ecad.runtime.provenance import GenerationSettings, annotate

    table = count_macs("tiny-shapes", 64, 64, guidance_scale=GUIDANCE_SCALE)
    full = table.full_schedule(6)
    bits = full.recompute.clone()
    bits[1::2, 2:] = False  # every other step replays the later blocks
    schedule = annotate(full.like(bits), settings=GenerationSettings("tiny-shapes", 6, GUIDANCE_SCALE, 64, 64))
    schedule.save(tmp_path / "s.json")
    assert main(["macs", "--model", "tiny-shapes", "--schedule", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    expected = table.report(schedule)
    assert "using the schedule's settings: height 64, width 64, guidance 3" in printed
    assert f"-> MAC speedup {expected['mac_speedup']:.2f}x" in printed and "64x64" in printed
    assert expected["mac_speedup"] != count_macs("tiny-shapes", 256, 256).report(schedule)["mac_speedup"]
    assert "TMAC" not in printed and " GMAC of " in printed and "per step (MMAC)" in printed
    assert main(["macs", "--model", "tiny-shapes", "--schedule", str(tmp_path / "s.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected
