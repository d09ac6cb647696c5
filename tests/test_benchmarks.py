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


@pytest.mark.parametrize(("model", "pipeline", "blocks", "transformer_b", "text_b"), [
    ("random:pixart-alpha", "PixArtAlphaPipeline", 28, 0.611, 4.762),  # PixArt-XL-2 (611 M) + T5-v1.1-XXL encoder
    ("random:pixart-sigma", "PixArtSigmaPipeline", 28, 0.611, 4.762),
    ("random:flux-dev", "FluxPipeline", 19 + 38, 11.901, 0.123),  # FLUX.1-dev (11.9 B) + CLIP-L text tower
])
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
