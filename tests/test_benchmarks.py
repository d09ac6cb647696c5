"""The GPU benchmarks' random-weight pipelines have the real architectures (built on the meta device here)."""

import sys
from pathlib import Path

import pytest
import torch

import ecad

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import random_pipelines  # noqa: E402


def billions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e9


@pytest.mark.parametrize(
    ("model", "pipeline", "blocks", "transformer_b", "text_b"),
    [
        ("random:pixart-alpha", "PixArtAlphaPipeline", 28, 0.611, 4.762),  # PixArt-XL-2 (611 M) + T5-v1.1-XXL encoder
        ("random:pixart-sigma", "PixArtSigmaPipeline", 28, 0.611, 4.762),
        ("random:flux-dev", "FluxPipeline", 19 + 38, 11.901, 0.123),  # FLUX.1-dev (11.9 B) + CLIP-L text tower
    ],
)
def test_random_pipelines_have_the_published_sizes(model, pipeline, blocks, transformer_b, text_b):
    pipe = random_pipelines.build(model, torch.bfloat16, "meta")
    assert type(pipe).__name__ == pipeline
    assert pipe.transformer.dtype == torch.bfloat16
    assert len(ecad.model_layout(pipe).block_names) == blocks
    assert billions(pipe.transformer) == pytest.approx(transformer_b, abs=5e-4)
    assert billions(pipe.text_encoder) == pytest.approx(text_b, abs=5e-4)
    assert torch.get_default_dtype() == torch.float32  # restored after building
    t5 = getattr(pipe, "tokenizer_2", None) or pipe.tokenizer
    ids = t5(random_pipelines.prompts(2)).input_ids
    assert all(t5.unk_token_id not in row and len(row) == 13 for row in ids)  # 12 known words + </s>


def test_unknown_random_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="random:pixart-alpha"):
        random_pipelines.build("random:sd3-medium", torch.float32, "meta")
    with pytest.raises(ValueError, match="unknown preset"):
        random_pipelines.build("random:nope", torch.float32, "meta")


def test_gpu_script_dry_run_on_the_cpu(tmp_path):
    """benchmarks/gpu.sh's code path on the CPU: the 28-block stand-in instead of the presets, dynamo's eager backend
    instead of Inductor, every mode the GPU run times (CUDA graphs' mode is passed, the eager backend ignores it).
    One record; no graph break and no recompile anywhere under ecad; First Block Cache on its own copy, with the
    breaks its decision makes when compiled; every speedup measured against the same mode."""
    import json
    import os
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.sh"
    env = {
        **os.environ,
        "CONFIGS": "stand-in 64 no-cache,fora:3,fbcache:0.2",
        "DEVICE": "cpu",
        "DTYPE": "float32",
        "BACKEND": "eager",
        "MODES": "eager,regional,whole:reduce-overhead",
        "STEPS": "3",
        "ROUNDS": "1",
        "OUT": str(tmp_path),
        "OMP_NUM_THREADS": "1",
    }
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, timeout=600)
    records = [json.loads(line) for line in (tmp_path / "gpu.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["model"] == "stand-in" and records[0]["backend"] == "eager"
    results = records[0]["results"]
    assert set(results) == {"eager", "regional", "whole:reduce-overhead"}
    for mode, stats in results.items():
        assert set(stats) == {"no-cache", "fora:3", "fbcache:0.2"}, mode
        for name, entry in stats.items():
            assert (entry["graphs_new"] > 0) == (mode != "eager"), (mode, name)
            assert len(entry["minor_faults"]) == 1, (mode, name)
        for name in ("no-cache", "fora:3"):
            assert stats[name]["graph_breaks"] == stats[name]["recompiles_second_generation"] == 0, (mode, name)
        assert (stats["fbcache:0.2"]["graph_breaks"] > 0) == (mode != "eager")
        assert (
            stats["fbcache:0.2"]["mac_speedup"] is None
            and stats["fbcache:0.2"]["measured_speedup_vs_same_mode_uncached"]
        )
        assert stats["no-cache"]["measured_speedup_vs_same_mode_uncached"] == 1.0
        assert stats["fora:3"]["mac_speedup"] > 2


def test_replay_floor_runs_the_work_of_an_all_replay_step():
    """benchmarks/replay_floor.py's hook-free floors compute exactly what ecad's all-replay step computes (the same
    skip forward, its outputs read from buffers, per component or stacked), so the floor times the same work."""
    import copy
    from types import SimpleNamespace

    import compiled
    import replay_floor

    from ecad.runtime.hook_registry import registry_of
    from ecad.schedule.heuristics import fora

    args = SimpleNamespace(model="stand-in", layers=None, size=None, device="cpu", dtype="float32")
    transformer, scheduler, inputs, _, _ = compiled.build(args)
    clean = copy.deepcopy(transformer)
    handle = ecad.enable_cache(
        compiled.Loop(transformer, scheduler, inputs, 3).target, fora(ecad.model_layout(transformer), 3, 3)
    )
    sample, timestep = inputs["hidden_states"], torch.full((2,), 321.0)
    rest = {k: v for k, v in inputs.items() if k != "hidden_states"}
    handle.state.start_generation()  # as a pipeline's loop: step 0 computes everything, step 1 replays everything
    with torch.no_grad():
        transformer(sample, timestep=timestep, **rest)
        handle.state.scheduler_step(sample)
        kept = [list(entries) for entries in handle.state.outputs.passes[0]]
        floors = [replay_floor.replaying_copy(clean, kept, stacked) for stacked in (False, True)]
        replayed = transformer(sample, timestep=timestep, return_dict=False, **rest)[0]
        handle.state.scheduler_step(sample)
        outputs = [floor(sample, timestep=timestep, return_dict=False, **rest)[0] for floor in floors]
    assert handle.counts == {"computed": 28 * 3, "reused": 28 * 3, "forecast": 0}
    assert all(torch.equal(output, replayed) for output in outputs)
    assert all(registry_of(block) is None for floor in floors for block in floor.transformer_blocks)
    assert [type(block).__name__ for block in floors[1].transformer_blocks] == ["ReplayingBasicTransformerBlock"] * 28
