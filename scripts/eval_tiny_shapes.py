"""Evaluate the shipped tiny-shapes pipeline with its reward model; writes JSON and an image grid.

Measures, on the captions held out from training (all 496, each once; 20 steps, guidance 3): reward accuracy
(reward > 0.5) and mean reward of uncached generations, the same for real generator renders of those captions,
shape-FID of generated vs real images (and real vs real, the floor), seconds per image, and the same quality numbers
under cache schedules from ecad.heuristics run by ecad's per-component runtime (ecad.enable_cache): FORA N = 2, 3, 4 and
a mild schedule that only caches cross-attention every other step.

    PYTHONPATH=src python scripts/eval_tiny_shapes.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

import ecad
from ecad.models.tiny_shapes import (
    GUIDANCE_SCALE,
    PIPELINE_DIR,
    PIPELINE_KWARGS,
    load_pipeline,
    load_reward_model,
    shape_fid,
)
from ecad.models.tiny_shapes.scenes import all_captions, layout, parse_caption, render_batch
from ecad.schedule import CacheSchedule, ModelLayout, heuristics

ROOT = Path(__file__).resolve().parents[1]


# name -> (description, schedule builder from ecad.heuristics); None means no caching (no hooks installed).
SCHEDULES: dict[str, tuple[str, Callable[[ModelLayout, int], CacheSchedule] | None]] = {
    "no_cache": ("no caching: the plain pipeline, no hooks", None),
    "mild": (
        "heuristics.component_interval(layout, steps, 'attn2', 2): cross-attention recomputes every 2nd step, "
        "self-attention and FF every step",
        lambda layout, steps: heuristics.component_interval(layout, steps, "attn2", 2),
    ),
    "fora_2": (
        "heuristics.fora(layout, steps, 2): every component recomputes every 2nd step",
        lambda layout, steps: heuristics.fora(layout, steps, 2),
    ),
    "fora_3": ("heuristics.fora(layout, steps, 3)", lambda layout, steps: heuristics.fora(layout, steps, 3)),
    "fora_4": ("heuristics.fora(layout, steps, 4)", lambda layout, steps: heuristics.fora(layout, steps, 4)),
}


def generate(
    pipe,
    captions: list[str],
    args: argparse.Namespace,
    schedule: str = "no_cache",
    counts: dict[str, int] | None = None,
) -> torch.Tensor:
    """Images [N, 3, 64, 64] in [0, 1]; batch b uses generator seed args.seed + b, so runs are comparable.
    ``counts`` accumulates the runtime's computed / reused component calls."""
    build = SCHEDULES[schedule][1]
    images = []
    for b, start in enumerate(range(0, len(captions), args.batch)):
        # ecad's per-component runtime; a fresh handle per call, removed again afterwards
        context = ecad.enable_cache(pipe, build(ecad.model_layout(pipe), args.steps)) if build else nullcontext()
        with context:
            out = pipe(
                captions[start : start + args.batch],
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                generator=torch.Generator().manual_seed(args.seed + b),
                output_type="pt",
                **PIPELINE_KWARGS,
            )
        if build and counts is not None:
            for key, value in context.counts.items():
                counts[key] = counts.get(key, 0) + value
        images.append(out.images.float().cpu())
    return torch.cat(images)


def seconds_per_image(pipe, args: argparse.Namespace, repeats: int = 5) -> float:
    """Batch-1 latency at the eval's steps and guidance (CFG doubles the transformer batch)."""
    generate(pipe, ["a small red circle above a large blue square"], args)  # warm-up
    start = time.perf_counter()
    for i in range(repeats):
        generate(pipe, [f"a large green triangle {['on the left', 'at the top'][i % 2]}"], args)
    return (time.perf_counter() - start) / repeats


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10((a - b).pow(2).mean()))


def save_grid(rows: list[str], columns: dict[str, torch.Tensor], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(1.9 * len(columns) + 2.6, 1.9 * len(rows)), squeeze=False
    )
    for c, (name, images) in enumerate(columns.items()):
        for r, text in enumerate(rows):
            ax = axes[r][c]
            ax.imshow(images[r].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(
                    text.replace(" to the", "\nto the").replace(" above", "\nabove").replace(" below", "\nbelow"),
                    rotation=0,
                    ha="right",
                    va="center",
                    fontsize=7,
                )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, default=PIPELINE_DIR, help="tiny-shapes pipeline folder")
    parser.add_argument("--n", type=int, default=0, help="first N held-out captions (default: all 496, each once)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=GUIDANCE_SCALE, help="default: the model's best (3)")
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--schedules", default=",".join(SCHEDULES), help=f"subset of {list(SCHEDULES)}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tiny_shapes_eval.json")
    parser.add_argument("--grid", type=Path, default=ROOT / "docs" / "images" / "tiny_shapes_grid.png")
    parser.add_argument("--grid-rows", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipe, judge = load_pipeline(path=args.pipeline), load_reward_model()
    pipe.set_progress_bar_config(disable=True)  # thousands of calls; the script reports per schedule
    rng = np.random.default_rng(args.seed + 1000)
    captions = all_captions("heldout")[: args.n or None]
    specs = [parse_caption(c) for c in captions]
    real = render_batch([layout(s, rng) for s in specs])
    real_again = render_batch([layout(s, rng) for s in specs])  # same captions, new layouts: the FID floor
    real_reward = judge.score(real, captions)
    shuffled = captions[1:] + captions[:1]
    result: dict = {
        "setup": {
            "n_heldout_captions": len(captions),
            "steps": args.steps,
            "guidance_scale": args.guidance,
            "threads": args.threads,
            "seed": args.seed,
            "torch": torch.__version__,
        },
        "real": {
            "accuracy": float((real_reward > 0.5).float().mean()),
            "mean_reward": float(real_reward.mean()),
            "mismatched_caption_accuracy": float((judge.score(real, shuffled) > 0.5).float().mean()),
            "shape_fid_real_vs_real": shape_fid(judge, real, real_again),
            "shape_fid_real_vs_noise": shape_fid(judge, real, torch.rand_like(real)),
        },
        "seconds_per_image": seconds_per_image(pipe, args),
        "schedules": {},
    }
    generated: dict[str, torch.Tensor] = {}
    for name in args.schedules.split(","):
        start = time.perf_counter()
        counts: dict[str, int] = {}
        images = generate(pipe, captions, args, name, counts)
        elapsed = time.perf_counter() - start
        reward = judge.score(images, captions)
        generated[name] = images
        entry = {
            "description": SCHEDULES[name][0],
            "accuracy": float((reward > 0.5).float().mean()),
            "mean_reward": float(reward.mean()),
            "shape_fid_vs_real": shape_fid(judge, images, real),
            "seconds_per_image_batched": elapsed / len(captions),
        }
        if counts:
            entry["component_calls"] = counts
            entry["fraction_computed"] = counts["computed"] / max(1, counts["computed"] + counts["reused"])
        if "no_cache" in generated and name != "no_cache":
            entry["psnr_vs_no_cache_db"] = psnr(images, generated["no_cache"])
        result["schedules"][name] = entry
        print(name, json.dumps(entry), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    columns = {k: v for k, v in generated.items() if k in ("no_cache", "fora_2", "fora_4")}
    if columns:
        rows = np.linspace(0, len(captions) - 1, args.grid_rows).round().astype(int).tolist()  # spread over the set
        save_grid(
            [captions[r] for r in rows],
            {"real render": real[rows], **{k: v[rows] for k, v in columns.items()}},
            args.grid,
        )


if __name__ == "__main__":
    main()
