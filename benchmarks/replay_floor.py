"""How little a compiled step that replays everything can cost: ecad's all-replay step beside two hook-free floors.

A replayed step still runs the model's own work outside the blocks and, per block, the modulation, the gates and the
residual adds; under ``torch.compile`` each call also pays dynamo's guards and the graph's per-input handling. To see
which part of that is ecad's, the floors run the adapter's own skip forward with every component replayed, on a copy
of the model whose blocks have no hooks and keep their outputs as module buffers:

- ``floor-per-component``: one buffer per kept output, as ecad keeps them (one tensor per component);
- ``floor-stacked``: one buffer per block holding its components' outputs stacked (what a store that copies every
  computed output into a block-wide buffer would read).

All four (the uncached model, ecad all-replay, the two floors) run in one process, compiled the same way, in
interleaved rounds; each reports the median call of a generation after its first (medians over rounds, with the
spread) and its ratio to the uncached call.

A stacked store pays for its fewer inputs at every step that computes: each computed output is copied into the
block's buffer. ``--copy-preset`` times that copy beside the components that produce the outputs, at a preset's real
shapes (one block of it, random weights, eager): the share a stacked store would add to an all-recompute step.

    python benchmarks/replay_floor.py --model stand-in --save
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import emit, environment, median  # noqa: E402
from compiled import Loop, build, compiling  # noqa: E402

import ecad  # noqa: E402
from ecad.adapters import get_adapter  # noqa: E402
from ecad.schedule.heuristics import fora  # noqa: E402


class BufferStep:
    """A skip forward's step where every component replays the output its block holds as a buffer."""

    def __init__(self, block: torch.nn.Module, components: dict[str, int], stacked: bool) -> None:
        self.block, self.components, self.stacked = block, components, stacked

    def runs(self, component: str) -> bool:
        return False

    def replay(self, component: str) -> Any:
        index = self.components[component]
        return self.block.ecad_kept[index] if self.stacked else getattr(self.block, f"ecad_kept_{index}")


def replaying_copy(transformer: torch.nn.Module, kept: list[list[Any]], stacked: bool) -> torch.nn.Module:
    """A copy of ``transformer`` (without hooks) whose blocks with a skip forward run it with every component replayed
    from buffers holding ``kept`` (``[block][component]``, ecad's kept outputs of one pass). Each such block's class
    becomes a subclass (one per block kind, so regional compilation shares its graphs as ecad's blocks do) whose
    ``forward`` does that, so the model's code calls it as it calls the block."""
    model = copy.deepcopy(transformer)
    kinds: dict[type, type] = {}
    for b, block, skip, components in get_adapter(model).block_skips(model):
        outputs = [kept[b][index] for index in components.values()]
        if stacked:
            block.register_buffer("ecad_kept", torch.stack(outputs))
        else:
            for position, output in enumerate(outputs):
                block.register_buffer(f"ecad_kept_{position}", output)
        block.ecad_replay = (skip.forward, {name: position for position, name in enumerate(components)}, stacked)
        kind = type(block)
        block.__class__ = kinds.setdefault(kind, type(f"Replaying{kind.__name__}", (kind,), {"forward": _replaying}))
    return model


def _replaying(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
    forward, components, stacked = self.ecad_replay
    return forward(self, BufferStep(self, components, stacked), *args, **kwargs)


def measure(args: Any) -> dict[str, Any]:
    transformer, scheduler, inputs, _, _ = build(args)
    loops = {"no-cache": Loop(copy.deepcopy(transformer), copy.deepcopy(scheduler), inputs, args.steps)}
    clean = loops["no-cache"].transformer  # copied before the cache's hooks go on the transformer
    cached = Loop(transformer, scheduler, inputs, args.steps)
    handle = ecad.enable_cache(cached.target, fora(ecad.model_layout(transformer), args.steps, args.steps))
    cached.run()  # keeps every component's output of the first step
    kept = [list(entries) for entries in handle.state.outputs.passes[0]]
    loops["ecad all-replay"] = cached
    for name, stacked in (("floor-per-component", False), ("floor-stacked", True)):
        loops[name] = Loop(replaying_copy(clean, kept, stacked), copy.deepcopy(scheduler), inputs, args.steps)
    results = {}
    for mode in args.modes.split(","):
        torch._dynamo.reset()
        calls: dict[str, list[float]] = {name: [] for name in loops}
        with contextlib.ExitStack() as stack:
            for loop in loops.values():
                stack.enter_context(compiling(loop.transformer, mode, args.backend))
            for loop in loops.values():  # compile, then a generation more
                loop.run()
                loop.run()
            for _ in range(args.rounds):
                for name, loop in loops.items():
                    calls[name].append(median(loop.run()[1:]))
        base = median(calls["no-cache"])
        results[mode] = {
            name: {
                "median_call_us": 1e6 * median(values),
                "spread_call_us": [1e6 * min(values), 1e6 * max(values)],
                "of_uncached_call": median(values) / base,
            }
            for name, values in calls.items()
        }
    handle.disable()
    return results


def copy_cost(args: Any) -> dict[str, Any]:
    """One block of ``--copy-preset`` at ``--copy-size``: seconds of its components (eager) against copying their
    outputs into a stacked buffer, in interleaved rounds."""
    build_args = argparse.Namespace(**{**vars(args), "model": args.copy_preset, "size": args.copy_size, "layers": 1})
    transformer, _, inputs, _, _ = build(build_args)
    block = transformer.transformer_blocks[0]
    hidden = torch.randn(inputs["encoder_hidden_states"].shape[0], (args.copy_size // 16) ** 2, block.attn1.inner_dim)
    context = torch.randn(*inputs["encoder_hidden_states"].shape[:2], block.attn2.cross_attention_dim)
    components = (
        lambda: block.attn1(hidden),
        lambda: block.attn2(hidden, encoder_hidden_states=context),
        lambda: block.ff(hidden),
    )
    store = torch.empty(len(components), *hidden.shape)
    compute, copy_ = [], []
    with torch.no_grad():
        for _ in range(args.rounds):
            start = time.perf_counter()
            outputs = [component() for component in components]
            compute.append(time.perf_counter() - start)
            start = time.perf_counter()
            for index, output in enumerate(outputs):
                store[index].copy_(output)
            copy_.append(time.perf_counter() - start)
    return {
        "preset": args.copy_preset,
        "size": args.copy_size,
        "tokens": hidden.shape[1],
        "components_ms": 1e3 * median(compute),
        "copy_ms": 1e3 * median(copy_),
        "copy_over_components": median(copy_) / median(compute),
        "copy_over_components_rounds": [b / a for a, b in zip(compute, copy_, strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="stand-in", help="stand-in, tiny-shapes or an architecture preset")
    parser.add_argument("--modes", default="whole,regional")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (eager: a quick dry run)")
    parser.add_argument("--copy-preset", default="pixart-alpha", help="preset whose block times the stacked copy")
    parser.add_argument("--copy-size", type=int, default=256)
    parser.add_argument("--save", action="store_true", help="append the result to benchmarks/results/replay_floor")
    args = parser.parse_args()
    args.size, args.layers, args.device, args.dtype = None, None, "cpu", "float32"
    torch.set_num_threads(args.threads)
    results = measure(args)
    stacked_copy = copy_cost(args)
    record = {
        "benchmark": "replay_floor",
        **environment("cpu"),
        "model": args.model,
        "steps": args.steps,
        "rounds": args.rounds,
        "backend": args.backend,
        "fullgraph": True,
        "results": results,
        "stacked_store_copy": stacked_copy,
    }
    emit("replay_floor", record, args.save)
    for mode, entries in results.items():
        for name, entry in entries.items():
            print(
                f"{mode:9s} {name:20s} {entry['median_call_us']:8.0f} us  {entry['of_uncached_call']:6.1%}",
                file=sys.stderr,
            )
    print(
        f"stacked store: copying {stacked_copy['preset']}'s block outputs costs {stacked_copy['copy_ms']:.2f} ms "
        f"against {stacked_copy['components_ms']:.1f} ms of its components "
        f"({stacked_copy['copy_over_components']:.1%})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
