"""Memory the caches take: measured against the README's formula, and the float16-cache option's quality effect.

    python benchmarks/memory.py --model tiny-shapes [--save]

Measured: bytes of the distinct storages the kept outputs hold after a generation (and, on CUDA, the rise in peak
allocated memory over an uncached run). Formula: passes x sum over existing (block, component) of the numel of its
output x element size. Quality effect of ``cache_dtype=float16``: PSNR/SSIM of its images against float32 caching.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import emit, environment, settings, setup  # noqa: E402
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure  # noqa: E402

import ecad  # noqa: E402
from ecad.schedule import heuristics  # noqa: E402


def output_numel(pipe, call) -> int:
    """Sum of the output sizes of every component in one transformer call (the formula's sum)."""
    sizes: dict[int, int] = {}
    adapter = ecad.get_adapter(pipe.transformer)
    handles = []
    for _, _, _, module in adapter.components(pipe.transformer):

        def record(_m, _i, out, key=id(module)):  # noqa: B008 (binds this module's id now, not the loop's last)
            tensors = out if isinstance(out, tuple) else (out,)
            sizes[key] = sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))

        handles.append(module.register_forward_hook(record))
    call()
    for handle in handles:
        handle.remove()
    return sum(sizes.values())


def peak_rise(pipe, call, schedule) -> int | None:
    device = pipe.device
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    call()
    plain = torch.cuda.max_memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with ecad.enable_cache(pipe, schedule):
        call()
    return torch.cuda.max_memory_allocated(device) - plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args, pipe, prompts, size, call = setup(parser)
    element = next(pipe.transformer.parameters()).element_size()
    formula = output_numel(pipe, call) * element  # one pass per step: CFG is batched
    layout = ecad.model_layout(pipe)
    rows = []
    for schedule in (heuristics.fora(layout, args.steps, 3), heuristics.random_schedule(layout, args.steps, 0.5)):
        with ecad.enable_cache(pipe, schedule) as handle:
            images = call()
            measured = handle.cache_bytes()
        with ecad.enable_cache(pipe, schedule, cache_dtype=torch.float16) as handle:
            half_images = call()
            half = handle.cache_bytes()
        rows.append(
            {
                "schedule": schedule.metadata["name"],
                "cache_bytes": measured,
                "formula_bytes": formula,
                "cuda_peak_rise_bytes": peak_rise(pipe, call, schedule),
                "float16_cache_bytes": half,
                "float16_psnr_vs_float32": peak_signal_noise_ratio(half_images, images, data_range=1.0).item(),
                "float16_ssim_vs_float32": structural_similarity_index_measure(
                    half_images, images, data_range=1.0
                ).item(),
            }
        )
    emit(
        "memory",
        {"benchmark": "memory", **environment(str(pipe.device)), **settings(args, size), "rows": rows},
        args.save,
    )


if __name__ == "__main__":
    main()
