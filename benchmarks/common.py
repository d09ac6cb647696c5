"""Shared by the benchmark scripts: environment facts and appending JSON results."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import diffusers
import random_pipelines
import torch

RESULTS = Path(__file__).parent / "results"


def device_name(device: str = "cpu") -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> dict[str, Any]:
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


def settings(args: Any, size: int) -> dict[str, Any]:
    """The run settings every speed/memory result records."""
    return {
        "model": args.model,
        "batch": args.batch,
        "steps": args.steps,
        "size": size,
        "dtype": args.dtype,
        "guidance": args.guidance,
        "repeats": args.repeats,
        "compile": args.compile,
    }


def emit(name: str, result: dict[str, Any], save: bool) -> None:
    """Print the result as one JSON object; with ``save``, append it to benchmarks/results/<name>.jsonl."""
    text = json.dumps(result)
    print(text)
    if save:
        RESULTS.mkdir(exist_ok=True)
        with open(RESULTS / f"{name}.jsonl", "a") as handle:
            handle.write(text + "\n")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TransformerTimer:
    """Seconds spent inside the transformer's forward during a pipeline call (torch forward hooks, synchronised)."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        self.device = next(transformer.parameters()).device
        self.seconds = 0.0
        self._start = 0.0
        self.handles = [transformer.register_forward_pre_hook(self._pre), transformer.register_forward_hook(self._post)]

    def _pre(self, *_: Any) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()

    def _post(self, *_: Any) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._start

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def time_call(pipe: Any, call: Any, timer: TransformerTimer | None = None) -> tuple[float, float]:
    """(end-to-end seconds, transformer seconds) of one pipeline call."""
    device = next(pipe.transformer.parameters()).device
    if timer is not None:
        timer.seconds = 0.0
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start, (timer.seconds if timer is not None else 0.0)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def pipeline_runner(pipe: Any, prompts: list[str], steps: int, size: int, guidance: float) -> Any:
    """A no-argument callable that runs one fixed-seed generation of ``prompts``."""
    from ecad.models.loading import pipeline_call_kwargs

    def call() -> Any:
        generators = [torch.Generator("cpu").manual_seed(i) for i in range(len(prompts))]
        return pipe(
            list(prompts),
            num_inference_steps=steps,
            height=size,
            width=size,
            guidance_scale=guidance,
            generator=generators,
            output_type="pt",
            **pipeline_call_kwargs(pipe),
        ).images

    return call


def front_schedules(paths: list[str]) -> dict[str, Any]:
    """Schedule files by a readable name: ``r/front/003.json`` or ``r/003.json`` -> ``r/003``."""
    import ecad

    def name(path: Path) -> str:
        if not path.stem.isdigit():
            return path.stem
        return f"{(path.parent.parent if path.parent.name == 'front' else path.parent).name}/{path.stem}"

    return {name(Path(f)): ecad.CacheSchedule.load(f) for f in paths}


def common_arguments(parser: Any) -> None:
    parser.add_argument(
        "--model",
        default="tiny-shapes",
        help="tiny-shapes, a pipeline folder, a hub id, or random:PRESET (real architecture, random "
        "weights: random:pixart-alpha, random:pixart-sigma, random:flux-dev)",
    )
    parser.add_argument("--prompts", default="tiny-shapes", help="prompt file or built-in set")
    parser.add_argument("--batch", type=int, default=4, help="images per pipeline call")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, help="image size (default: the pipeline's)")
    parser.add_argument("--guidance", type=float, default=4.5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument(
        "--compile", action="store_true", help="time a torch.compile'd transformer (ecad's hooks inside)"
    )
    parser.add_argument("--layers", type=int, help="random:PRESET only: fewer transformer blocks (CPU smoke tests)")
    parser.add_argument(
        "--text-layers", type=int, help="random:PRESET only: fewer text-encoder layers (CPU smoke tests)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the CPU machine's cores)")
    parser.add_argument("--save", action="store_true", help="append the JSON result to benchmarks/results/")


def setup(parser: Any) -> tuple[Any, Any, list[str], int, Any]:
    """Parse the common arguments (plus the benchmark's own, already on ``parser``), load the pipeline and the
    prompts; returns ``(args, pipe, prompts, size, call)`` with ``call`` one fixed-seed generation."""
    from ecad.models.loading import default_size, load_pipeline, resolve_device, resolve_dtype
    from ecad.models.prompts import load_prompts

    common_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model.startswith(random_pipelines.PREFIX):
        pipe = random_pipelines.build(
            args.model, resolve_dtype(args.dtype), resolve_device(args.device), args.layers, args.text_layers
        )
        prompts = random_pipelines.prompts(args.batch)
    else:
        pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
        prompts = load_prompts(args.prompts)
    pipe.set_progress_bar_config(disable=True)  # timed calls: no per-step bar
    if args.compile:  # ecad's hooks go on the wrapped modules (enable_cache unwraps torch.compile)
        pipe.transformer = torch.compile(pipe.transformer)
    prompts = [prompts[i % len(prompts)] for i in range(args.batch)]
    size = args.size or default_size(pipe)
    return args, pipe, prompts, size, pipeline_runner(pipe, prompts, args.steps, size, args.guidance)


def time_schedules(
    pipe: Any, call: Any, schedules: dict[str, Any], warmup: int, repeats: int
) -> dict[str, tuple[list[float], list[float]]]:
    """End-to-end and transformer seconds of every schedule (``None``: no caching), ``repeats`` round-robin rounds
    after ``warmup`` (drift on a shared machine hits every schedule alike)."""
    from tqdm.auto import tqdm

    import ecad

    timer = TransformerTimer(pipe.transformer)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in schedules}
    try:
        for repeat in tqdm(range(warmup + repeats), desc="rounds"):
            for name, schedule in schedules.items():
                handle = ecad.enable_cache(pipe, schedule) if schedule is not None else None
                total, transformer = time_call(pipe, call, timer)
                if handle is not None:
                    handle.disable()
                if repeat >= warmup:
                    times[name][0].append(total)
                    times[name][1].append(transformer)
    finally:
        timer.remove()
    return times


def cost_models(pipe: Any, size: int, images: int, guidance: float, latency: bool) -> tuple[Any, Any]:
    """The MAC cost table and (optionally) the latency table at the benchmark's real call (observed)."""
    from ecad.cost.latency import measure_latency
    from ecad.models.macs import count_macs

    table = count_macs(pipe, size, size, guidance_scale=guidance, images=images)
    return table, measure_latency(pipe, size, size, images=images, guidance_scale=guidance) if latency else None


def calibration_captions(prompts: int) -> list[str]:
    """The benchmarks' calibration captions: the first ``prompts`` of the tiny-shapes prompt set (more than its 16:
    an evenly spread subset of that many training captions)."""
    from ecad.models.prompts import load_prompts, tiny_shapes_captions

    builtin = load_prompts("tiny-shapes")
    return builtin[:prompts] if prompts <= len(builtin) else tiny_shapes_captions("train", prompts)


def tiny_search(out: Path | str, prompts: int, **settings: Any) -> tuple[Any, Any]:
    """The benchmarks' search: tiny-shapes scored by tiny-reward on ``calibration_captions(prompts)``, on the CPU,
    run in ``out`` (resumed if a run is there); ``settings`` are the rest of its ``SearchConfig``. Returns the config
    and the search's result."""
    from ecad.search import RunDirectory, SearchConfig, search

    config = SearchConfig(
        model="tiny-shapes",
        prompts=calibration_captions(prompts),
        metric="tiny-reward",
        batch_size=16,
        device="cpu",
        **settings,
    )
    return config, search(config, out, resume=RunDirectory(out).config_path.exists(), progress=False)
