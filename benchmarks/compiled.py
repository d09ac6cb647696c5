"""Compiled ecad as users run it: eager, compiled whole and compiled regional transformers under cache schedules.

For each mode and schedule: graph breaks, new graphs, recompiles in a second generation, compile seconds, transformer
seconds per generation (median of interleaved rounds, with the spread), the measured speedup against the same mode's
uncached model, and delivery (measured / MAC speedup). The transformer runs in a pipeline's loop (its scheduler
drives ecad's step clock, as in a pipeline call), timed without text encoding and decoding.

    python benchmarks/compiled.py --model stand-in --schedules no-cache,all-replay --save
    python benchmarks/compiled.py --model tiny-shapes --save
    python benchmarks/compiled.py --model pixart-alpha --size 256 --paper ../shared/paper/schedules/pixart_alpha_256

``stand-in``: a 28-block PixArt with tiny tensors, where the host is the limit (as on a GPU at small batch).
``--layers`` shrinks a preset (a reduced configuration, recorded as such); ``--modes eager`` runs on any ecad.
``fbcache:T`` is diffusers' First Block Cache at threshold T on its own copy of the transformer, compiled with
``fullgraph=False`` (its decision breaks the graph), timed in a pass of its own against that pass's uncached model;
its MAC speedup depends on the data and is not given.
Each generation's minor page faults are recorded: on a CPU, glibc's malloc returns freed memory to the system and takes
fresh pages back, so the allocator's settings (``MALLOC_*`` variables, recorded) change what a step costs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import emit, environment, median, synchronize  # noqa: E402
from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

import ecad  # noqa: E402
from ecad.adapters import find_preset, get_adapter  # noqa: E402
from ecad.models.macs import count_macs  # noqa: E402
from ecad.peers.base import restored  # noqa: E402
from ecad.peers.diffusers_caches import diffusers_cache  # noqa: E402
from ecad.runtime.compilation import CompileConfig, compiled  # noqa: E402
from ecad.schedule.heuristics import fora  # noqa: E402

STAND_IN = dict(
    num_layers=28,
    num_attention_heads=2,
    attention_head_dim=8,
    in_channels=4,
    out_channels=8,
    sample_size=8,
    patch_size=2,
    cross_attention_dim=16,
    caption_channels=32,
    norm_type="ada_norm_single",
    norm_elementwise_affine=False,
    norm_eps=1e-6,
    use_additional_conditions=False,
)


def build(args: Any) -> tuple[torch.nn.Module, Any, dict[str, Any], int, int]:
    """``(transformer, scheduler, inputs without the timestep, height, width)``; random inputs, seed 0."""
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, PixArtTransformer2DModel

    torch.manual_seed(0)
    text_len = 8
    if args.model == "stand-in":
        transformer, scheduler, size = PixArtTransformer2DModel(**STAND_IN), DPMSolverMultistepScheduler(), 64
    elif args.model == "tiny-shapes":
        from ecad.models.loading import default_size, load_pipeline

        pipe = load_pipeline("tiny-shapes", device="cpu", dtype="float32")
        transformer, scheduler, size = pipe.transformer, pipe.scheduler, default_size(pipe)
        text_len = 16
    else:
        adapter, preset = find_preset(args.model)
        config = {k: v for k, v in preset.config.items() if not k.startswith("_")}
        if args.layers:  # a reduced configuration: every block list shortened
            config |= {k: args.layers for k in ("num_layers", "num_single_layers") if k in config}
        import diffusers

        transformer = getattr(diffusers, preset.config["_class_name"]).from_config(config)
        scheduler = FlowMatchEulerDiscreteScheduler() if adapter.family == "flux" else DPMSolverMultistepScheduler()
        size, text_len = args.size or 256, preset.text_len
    size = args.size or size
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    transformer.eval().requires_grad_(False).to(device, dtype)
    adapter = get_adapter(transformer)
    inputs = adapter.dummy_inputs(transformer.config, 2, size, size, text_len, device)
    inputs = {k: _random(v, dtype) for k, v in inputs.items() if k != adapter.timestep_arg}
    return transformer, scheduler, inputs, size, size


def _random(value: Any, dtype: torch.dtype) -> Any:
    """Random inputs; FLUX's position ids (``[tokens, 3]``) and 1-D conditioning (guidance) stay zeros."""
    if isinstance(value, torch.Tensor):
        ids = value.ndim < 2 or value.shape[-1] == 3
        return (torch.zeros if ids else torch.randn)(value.shape, device=value.device, dtype=dtype)
    if isinstance(value, dict):
        return {k: _random(v, dtype) for k, v in value.items()}
    return value


def schedules(args: Any, transformer: torch.nn.Module) -> dict[str, Any]:
    layout = ecad.model_layout(transformer)
    out: dict[str, Any] = {}
    for name in args.schedules.split(","):
        if name == "no-cache":
            out[name] = None
        elif name == "all-recompute":
            out[name] = layout.full_schedule(args.steps)
        elif name == "all-replay":  # step 0 computes, every later step replays everything
            out[name] = fora(layout, args.steps, args.steps)
        elif name.startswith("fora:"):
            out[name] = fora(layout, args.steps, int(name[5:]))
        elif name.startswith("fbcache:"):  # a First Block Cache threshold (one per run: its hooks go on once)
            if any(isinstance(value, float) for value in out.values()):
                raise SystemExit("give one fbcache:T per run")
            out[name] = float(name[8:])
        else:
            raise SystemExit(f"unknown schedule {name!r}: use no-cache, all-recompute, all-replay, fora:N or fbcache:T")
    for path in sorted(Path(args.paper).glob("*.json")) if args.paper else []:
        out[f"paper/{path.stem}"] = ecad.CacheSchedule.load(path)
    return out


class Loop:
    """The denoising loop of a pipeline, transformer only: per-call seconds of one generation."""

    def __init__(self, transformer: torch.nn.Module, scheduler: Any, inputs: dict[str, Any], steps: int) -> None:
        self.target = SimpleNamespace(transformer=transformer, scheduler=scheduler)
        self.transformer, self.scheduler, self.inputs, self.steps = transformer, scheduler, inputs, steps
        adapter = get_adapter(transformer)
        self.sample_arg, self.scale = adapter.sample_arg, adapter.timestep_scale / 1000.0
        self.device = next(transformer.parameters()).device

    @torch.no_grad()
    def run(self) -> list[float]:
        self.scheduler.set_timesteps(self.steps)
        inputs = dict(self.inputs)
        sample = inputs.pop(self.sample_arg)
        seconds = []
        for t in self.scheduler.timesteps:
            timestep = (t * self.scale).to(self.device, sample.dtype).expand(sample.shape[0])
            synchronize(self.device)
            start = time.perf_counter()
            out = self.transformer(sample, timestep=timestep, return_dict=False, **inputs)[0]
            synchronize(self.device)
            seconds.append(time.perf_counter() - start)
            sample = self.scheduler.step(out[:, : sample.shape[1]], t, sample, return_dict=False)[0]
        return seconds


def compiling(transformer: torch.nn.Module, mode: str, backend: str = "inductor", fullgraph: bool = True) -> Any:
    """A ``with`` block's compilation: ``eager`` (none), ``whole``, ``regional``, or either with a ``torch.compile``
    mode: ``whole:reduce-overhead``."""
    if mode == "eager":
        return contextlib.nullcontext()
    scope, _, torch_mode = mode.partition(":")
    options = {"mode": torch_mode} if torch_mode else {}
    return compiled(transformer, CompileConfig(scope, backend), fullgraph=fullgraph, **options)


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def run_mode(plain: Loop, other: Loop, mode: str, named: dict[str, Any], rounds: int, backend: str) -> dict[str, Any]:
    """One pass: compile (warm-up: two generations of each schedule; one when eager, which compiles nothing), then
    ``rounds`` interleaved rounds. The uncached model is a copy of the transformer without hooks; ``other`` is the
    transformer under ecad (one cache that switches schedules with ``set_schedule``: a new cache would be new hooks,
    which dynamo guards on and would compile again) or, in a pass of its own, under First Block Cache on another copy
    (its graph breaks leave compiled entries on the shared ``forward`` code that every other call would look through).
    """
    scheduled = [value for value in named.values() if isinstance(value, ecad.CacheSchedule)]
    threshold = next((value for value in named.values() if isinstance(value, float)), None)
    torch._dynamo.reset()
    stats: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(compiling(plain.transformer, mode, backend))
        stack.enter_context(compiling(other.transformer, mode, backend, fullgraph=threshold is None))
        if threshold is not None:
            stack.enter_context(restored(other.target))  # its hooks come off at the end
            config = FirstBlockCacheConfig(threshold=threshold)
            stack.enter_context(diffusers_cache(other.target, lambda _: config, apply_first_block_cache))
        handle = ecad.enable_cache(other.target, scheduled[0]) if scheduled else None
        if handle is not None:
            stack.callback(handle.disable)

        def generation(name: str) -> list[float]:
            value = named[name]
            if value is None:
                return plain.run()
            if handle is not None:
                handle.set_schedule(value)
            return other.run()

        for name in named:
            counters.clear()
            first_s = sum(generation(name))
            graphs = counters["stats"]["unique_graphs"]
            second_s = sum(generation(name)) if mode != "eager" else first_s
            stats[name] = {
                "graph_breaks": sum(counters["graph_break"].values()),
                "graphs_new": graphs,
                "recompiles_second_generation": counters["stats"]["unique_graphs"] - graphs,
                "compile_s": max(first_s - second_s, 0.0),
                "generation_s": [],
                "replay_call_s": [],
                "minor_faults": [],
            }
        for _ in range(rounds):
            for name in named:
                faults = minor_faults()
                calls = generation(name)
                stats[name]["minor_faults"].append(minor_faults() - faults)
                stats[name]["generation_s"].append(sum(calls))
                stats[name]["replay_call_s"].append(median(calls[1:]))
    base = median(stats["no-cache"]["generation_s"])
    for entry in stats.values():
        entry["measured_speedup_vs_same_mode_uncached"] = base / median(entry["generation_s"])
    return stats


RUNTIME_FILES = tuple(f"ecad/runtime/{name}.py" for name in ("hooks", "state", "outputs", "cache"))


def python_calls_per_step(loop: Loop, schedule: Any) -> dict[str, int]:
    """What ecad's runtime runs in Python during the last call of an all-replay generation (eager), counted by a
    profile hook: hook invocations (``pre_forward``/``new_forward``) and calls of functions in the runtime's modules."""
    counted = {"on": False, "hooks": 0, "runtime": 0}

    def profile(frame: Any, event: str, _: Any) -> None:
        if counted["on"] and event == "call" and frame.f_code.co_filename.endswith(RUNTIME_FILES):
            counted["runtime"] += 1
            counted["hooks"] += frame.f_code.co_name in ("pre_forward", "new_forward")

    def last_call(*_: Any) -> None:
        counted.update(on=True, hooks=0, runtime=0)

    handle = ecad.enable_cache(loop.target, schedule)
    watch = loop.transformer.register_forward_pre_hook(last_call)
    done = loop.transformer.register_forward_hook(lambda *_: counted.__setitem__("on", False))
    sys.setprofile(profile)
    try:
        loop.run()
    finally:
        sys.setprofile(None)
        watch.remove()
        done.remove()
        handle.disable()
    return {"hook_invocations": counted["hooks"], "runtime_python_calls": counted["runtime"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="stand-in", help="stand-in, tiny-shapes or an architecture preset")
    parser.add_argument("--schedules", default="no-cache,all-recompute,fora:2,fora:3,fora:4,fora:5")
    parser.add_argument("--paper", help="a folder of the paper's schedule files for this model (added)")
    parser.add_argument("--modes", default="eager,whole,regional")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, help="image size in pixels (default: the model's)")
    parser.add_argument("--layers", type=int, help="a preset with fewer blocks: a reduced configuration")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (eager: a quick dry run)")
    parser.add_argument("--save", action="store_true", help="append the result to --results")
    parser.add_argument("--results", default="compiled", help="results file name under benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformer, scheduler, inputs, height, width = build(args)
    loop = Loop(transformer, scheduler, inputs, args.steps)
    plain = Loop(copy.deepcopy(transformer), copy.deepcopy(scheduler), inputs, args.steps)
    named = schedules(args, transformer)
    ours = {name: value for name, value in named.items() if not isinstance(value, float)}
    theirs = {name: value for name, value in named.items() if value is None or isinstance(value, float)}
    peer = Loop(copy.deepcopy(transformer), copy.deepcopy(scheduler), inputs, args.steps) if len(theirs) > 1 else None
    table = count_macs(transformer, height, width, text_len=inputs[get_adapter(transformer).text_arg].shape[1])
    full_macs = table.schedule_macs(table.full_schedule(args.steps))
    results = {}
    for mode in args.modes.split(","):
        stats = run_mode(plain, loop, mode, ours, args.rounds, args.backend)
        if peer is not None:  # First Block Cache: its own pass, against that pass's uncached model
            stats |= {
                name: entry
                for name, entry in run_mode(plain, peer, mode, theirs, args.rounds, args.backend).items()
                if name != "no-cache"
            }
        for name, entry in stats.items():
            schedule = named[name]
            measured = entry["measured_speedup_vs_same_mode_uncached"]
            mac = (
                full_macs / table.schedule_macs(schedule)
                if isinstance(schedule, ecad.CacheSchedule)
                else 1.0
                if schedule is None
                else None
            )  # First Block Cache: decided by the data
            entry.update(
                {
                    "median_generation_s": median(entry["generation_s"]),
                    "spread_generation_s": [min(entry["generation_s"]), max(entry["generation_s"])],
                    "median_replay_call_us": 1e6 * median(entry["replay_call_s"]),
                    "mac_speedup": mac,
                    "delivery_measured_over_mac": measured / mac if mac else None,
                }
            )
        results[mode] = stats
    record = {
        "benchmark": "compiled",
        **environment(args.device),
        "dtype": args.dtype,
        "backend": args.backend,
        "model": args.model,
        "steps": args.steps,
        "size": [height, width],
        "layers": args.layers or transformer.config.num_layers,
        "reduced": bool(args.layers),
        "rounds": args.rounds,
        "inductor_fullgraph": True,
        "transformer_only": True,
        "results": results,
        "malloc_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
        "ecad_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
        or None,
    }
    record["python_per_call"] = {
        name: python_calls_per_step(loop, named[name]) for name in ("all-replay", "all-recompute") if name in named
    }
    emit(args.results, record, args.save)
    for mode, stats in results.items():
        for name, entry in stats.items():
            print(
                f"{mode:9s} {name:22s} {entry['median_generation_s']:8.3f}s  replay call "
                f"{entry['median_replay_call_us']:9.0f}us  "
                f"speedup {entry['measured_speedup_vs_same_mode_uncached'] or 0:5.2f}x "
                f"(MAC {entry['mac_speedup'] or 0:5.2f}x)  breaks {entry['graph_breaks']} graphs {entry['graphs_new']} "
                f"recompiles {entry['recompiles_second_generation']}  compile {entry['compile_s']:.1f}s",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
