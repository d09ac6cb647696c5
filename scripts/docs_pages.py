"""Generate the docs pages that come from other sources: the CLI reference from ecad's argparse parsers and one page
per benchmark from ``benchmarks/results/*.jsonl``, so that no option list and no measured number is copied by hand.

    python scripts/docs_pages.py           # write docs/reference/cli.md and docs/benchmarks/*
    python scripts/docs_pages.py --check   # exit 1 and name the pages that differ from a fresh generation

Every number on a benchmark page is read from its results file; the prose around it only says what was measured and
how to read it. ``tests/test_docs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
# Bookkeeping of the project's own goals and local paths: not what a user reads.
HIDDEN_KEYS = ("benchmark", "eval_dir")
HIDDEN_WORDS = ("target",)
LONG_LIST = 2  # lists longer than this (raw repeat timings, curves) stay in the results file

Record = dict[str, Any]


# ---------------------------------------------------------------------------------------------------------- tables
def fmt(value: Any) -> str:
    """A cell: floats to 4 significant digits, pairs as intervals."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if value is None:
        return "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def shown(key: str, value: Any) -> bool:
    if key in HIDDEN_KEYS or any(word in key for word in HIDDEN_WORDS):
        return False
    return not (isinstance(value, list) and (len(value) > LONG_LIST or any(isinstance(v, (dict, list)) for v in value)))


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar fields of a nested dict as ``a.b`` columns; long lists and lists of records are left out."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if not shown(key, value):
            continue
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def table(rows: Iterable[tuple[str, dict[str, Any]]], first: str, drop: tuple[str, ...] = ()) -> list[str]:
    """A markdown table: one row per (name, record), one column per flattened field (union, in first-seen order),
    less the columns that start with a ``drop`` prefix."""
    flat = [(name, {k: v for k, v in flatten(row).items() if not k.startswith(drop)}) for name, row in rows]
    columns: dict[str, None] = {}
    for _, row in flat:
        columns.update(dict.fromkeys(row))
    if not flat or not columns:
        return []
    head = [first, *columns] if first else list(columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in flat:
        cells = [fmt(row.get(c)) for c in columns]
        lines.append("| " + " | ".join([name, *cells] if first else cells) + " |")
    return [*lines, ""]


def is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def is_keyed(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def render_record(record: Record, drop: tuple[str, ...] = ()) -> list[str]:
    """Settings first, then every table the record holds: lists of rows and dicts of named rows."""
    settings = {
        k: v
        for k, v in record.items()
        if not isinstance(v, (dict, list))
        and shown(k, v)
        and k not in ("date", "device", "torch", "diffusers", "threads")
    }
    lines = ["Settings: " + "; ".join(f"{k} `{fmt(v)}`" for k, v in settings.items()) + ".", ""] if settings else []
    named = {k: v for k, v in record.items() if isinstance(v, dict) and not is_keyed(v) and shown(k, v)}
    if named:
        lines += table(named.items(), "part")
    for key, value in record.items():
        if not shown(key, value) and not is_records(value):
            continue
        if is_records(value) and key not in HIDDEN_KEYS:
            nested = [k for k in value[0] if is_records(value[0][k])]
            lines += [f"**{key}**", ""] + table(((_row_name(r), r) for r in value), "", drop)
            for inner in nested:  # e.g. race_rungs: runs -> rungs
                lines += [f"**{key} / {inner}**", ""]
                lines += table(((f"{_row_name(r)}", i) for r in value for i in r.get(inner, [])), key)
        elif is_keyed(value):
            lines += [f"**{key}**", ""] + table(value.items(), key)
    return lines


def _row_name(row: dict[str, Any]) -> str:
    return str(next((row[k] for k in ("schedule", "name", "run", "seed") if k in row), ""))


# ---------------------------------------------------------------------------------------------------- benchmarks
@dataclass(frozen=True)
class Benchmark:
    """One page: what the benchmark measures, how to read it, and findings computed from its newest record."""

    name: str
    title: str
    what: str
    reading: str
    findings: Callable[[Record], list[str]] | None = None
    image: str | None = None
    drop: tuple[str, ...] = ()  # row-table columns (prefixes) that repeat others or only serve the benchmark itself
    reshape: Callable[[Record], Record] | None = None  # the record as tables read best (e.g. nested cells as rows)
    group: Callable[[Record], str] | None = None  # findings for the newest record of each group (e.g. each model)


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def x(value: float) -> str:
    return f"{value:.2f}x"


def delivered_findings(record: Record) -> list[str]:
    rows = [r for r in record["rows"] if r["schedule"] != "no-cache"]
    eff = [r["transformer_efficiency"] for r in rows]
    best = max(rows, key=lambda r: r["measured_end_to_end_speedup"])
    return [
        f"- Transformer-only, the schedules deliver {min(eff):.2f} to {max(eff):.2f} of their MAC speedup "
        f"(every step still pays the embeddings, gates and residual adds, which MACs barely count).",
        f"- Fastest end to end: `{best['schedule']}`, {x(best['measured_end_to_end_speedup'])} measured "
        f"({x(best['mac_speedup'])} MAC); time outside the transformer was "
        f"{record['outside_transformer_s']:.3f} s per call, which bounds every end-to-end speedup (Amdahl).",
    ]


def overhead_findings(record: Record) -> list[str]:
    ratio = record["overhead_ratio"]
    verdict = (
        "the hooks cost nothing measurable next to the model on this machine"
        if ratio <= 1.03
        else f"the hooks cost about {pct(ratio - 1)} of a plain call on this machine"
    )
    return [
        f"- All-recompute under ecad / plain pipeline, median over {record['repeats']} interleaved repeats: "
        f"{ratio:.3f} (pairwise median {record['pairwise_ratio_median']:.3f}): {verdict}."
    ]


def memory_findings(record: Record) -> list[str]:
    exact = all(r["cache_bytes"] == r["formula_bytes"] for r in record["rows"])
    worst = min(r["float16_psnr_vs_float32"] for r in record["rows"])
    share = max(r["float16_cache_bytes"] / r["cache_bytes"] for r in record["rows"])
    return [
        f"- The cache held {'exactly' if exact else 'not exactly'} what the formula predicts; a float16 cache "
        f"holds {pct(share)} of it, with images at least {worst:.1f} dB PSNR from float32 caching."
    ]


def cost_fidelity_findings(record: Record) -> list[str]:
    s = record["summary"]
    return [
        f"- `macs`: measured / predicted median {s['macs']['median']:.2f}, {pct(s['macs']['within_10_percent'])} "
        f"of schedules within 10%"
        + (": MACs under-price what every step pays whatever the schedule." if s["macs"]["median"] > 1 else "."),
        f"- `latency` (relative to its own no-cache prediction): median {s['latency_relative']['median']:.2f}, "
        f"{pct(s['latency_relative']['within_10_percent'])} within 10%, worst "
        f"{s['latency_relative']['max']:.2f}: use `--cost latency` when measured time is what matters.",
    ]


def peers_findings(record: Record) -> list[str]:
    rows = [r for r in record["rows"] if "nearest_ecad_by_speedup" in r]
    by = {v: [r["name"] for r in rows if r["nearest_ecad_by_speedup"]["verdict"] == v] for v in ("win", "tie", "loss")}
    ecad = [r for r in record["rows"] if r["family"] == "ecad"]
    peers = [r for r in rows if r["family"] not in ("ecad", "fora")]
    best_peer = max(peers, key=lambda r: r["match_rate"] + (r["speedup"] > 1.5))
    return [
        f"- ecad's evaluated front points run {x(min(r['speedup'] for r in ecad))} to "
        f"{x(max(r['speedup'] for r in ecad))} measured; the fastest peer setting "
        f"{x(max(r['speedup'] for r in peers))}.",
        f"- Against the nearest ecad point in measured speed (paired 95% interval over the same captions), ecad "
        f"wins against {len(by['win'])} rows, ties {len(by['tie'])} and **loses against {len(by['loss'])}**: "
        + ", ".join(f"`{n}`" for n in by["loss"])
        + ". Those are mild settings that keep no caching's quality "
        f"at low speedups, where this front has no learned point (e.g. `{best_peer['name']}`: "
        f"{pct(best_peer['match_rate'])} at {x(best_peer['speedup'])} measured). If you need only a small "
        f"speedup at no loss, such a method (or a front point from a search with a milder `--max-loss`) serves.",
    ]


def dominance_findings(record: Record) -> list[str]:
    best = record.get("best_at_75_percent") or {}
    nocache = next(r for r in record["rows"] if r["schedule"] == "no-cache")
    fora = [r for r in record["rows"] if r["schedule"].startswith("fora")]
    lines = [f"- No caching keeps {pct(nocache['heldout_matching'])} of the held-out captions matching."]
    if best:
        lines.append(
            f"- Best front point keeping at least 75%: `{best['schedule']}`, {pct(best['heldout_matching'])} "
            f"held-out at {x(best['mac_speedup'])} MAC / {x(best['measured_end_to_end_speedup'])} measured "
            f"end to end."
        )
    lines += [
        f"- `{r['schedule']}`: {pct(r['heldout_matching'])} at {x(r['measured_end_to_end_speedup'])} measured."
        for r in fora
    ]
    return lines


def demo_time_findings(record: Record) -> list[str]:
    return [
        f"- `ecad --help` median {record['help_median_s']:.2f} s; `ecad demo` median {record['demo_median_s']:.0f}"
        f" s on {record['cpu_count']} CPU cores (a fresh process each)."
    ]


def forecast_findings(record: Record) -> list[str]:
    two, three = record["summary"]["two-action"], record["summary"]["three-action"]
    better = "two" if two["heldout_hypervolume"] >= three["heldout_hypervolume"] else "three"
    return [
        f"- Held-out hypervolume: two actions {two['heldout_hypervolume']:.3f}, three actions "
        f"{three['heldout_hypervolume']:.3f}: on this model the {better}-action search is ahead; forecasting "
        f"costs the search more than it gives at {record['steps']} steps."
    ]


def efficiency_findings(record: Record) -> list[str]:
    out = []
    for seed in record["seeds"]:
        for name, run in seed.items():
            if isinstance(run, dict) and "fraction_of_paper_total" in run and run["fraction_of_paper_total"]:
                out.append(
                    f"- seed {seed['seed']}, `{name}`: reaches paper's final held-out hypervolume with "
                    f"{pct(run['fraction_of_paper_total'])} of paper's image-equivalents and ends at "
                    f"{run['final_heldout_hv']:.3f} (paper {seed['paper_final_heldout_hv']:.3f})."
                )
    return out


def compiled_rows(record: Record) -> Record:
    """``results[mode][schedule]`` as one row per (mode, schedule)."""
    rows = [
        {"mode": mode, "schedule": name, **cell}
        for mode, cells in record["results"].items()
        for name, cell in cells.items()
    ]
    return {**{k: v for k, v in record.items() if k != "results"}, "rows": rows}


def compiled_group(record: Record) -> str:
    """A compiled record's model, size, blocks, modes and allocator settings."""
    size = "x".join(str(n) for n in record["size"]) if "size" in record else "its size"
    blocks = f"{record['layers']} blocks{' (reduced)' if record.get('reduced') else ''}"
    malloc = ", ".join(f"`{k}={v}`" for k, v in record.get("malloc_env", {}).items())
    return f"`{record['model']}` at {size}, {blocks}, {' / '.join(record['results'])}" + (
        f", {malloc}" if malloc else ""
    )


def compiled_findings(record: Record) -> list[str]:
    results = record["results"]
    cells = [(mode, name, cell) for mode, named in results.items() for name, cell in named.items()]
    ours = [(mode, name, cell) for mode, name, cell in cells if not name.startswith("fbcache")]
    breaks = sum(cell["graph_breaks"] for _, _, cell in ours)
    again = sum(cell["recompiles_second_generation"] for _, _, cell in ours)
    lines = [
        f"- ecad: graph breaks {breaks} and graphs compiled by a second generation {again}, over all "
        f"{len(ours)} (mode, schedule) cells, with `fullgraph=True` ({record.get('backend', 'inductor')})."
    ]
    eager_call = results["eager"]["no-cache"]["median_replay_call_us"] if "eager" in results else None
    for mode, named in results.items():
        scheduled = [
            (name, cell)
            for name, cell in named.items()
            if name.startswith(("fora:", "paper/")) and cell.get("mac_speedup")
        ]
        speedups = ", ".join(
            f"`{name}` {x(cell['measured_speedup_vs_same_mode_uncached'])} ({x(cell['mac_speedup'])} MAC)"
            for name, cell in scheduled
        )
        uncached = named["no-cache"]
        versus = (
            f"; its uncached call {uncached['median_replay_call_us']:.0f} us against eager's {eager_call:.0f} "
            "us (a separate pass, not interleaved)"
            if mode != "eager" and eager_call
            else ""
        )
        if scheduled:
            lines.append(f"- {mode}: measured against the same mode's uncached model, {speedups}{versus}.")
            deliveries = [cell["delivery_measured_over_mac"] for _, cell in scheduled]
            lines.append(
                f"- {mode}: delivery (measured / MAC speedup) {min(deliveries):.2f} to "
                f"{max(deliveries):.2f} over these schedules."
            )
        if "all-recompute" in named:
            recompute = named["all-recompute"]
            overhead = recompute["median_generation_s"] / uncached["median_generation_s"] - 1
            faults = (
                "; minor page faults per generation, median: "
                f"{statistics.median(recompute['minor_faults']):.0f} against "
                f"{statistics.median(uncached['minor_faults']):.0f} uncached"
                if "minor_faults" in recompute
                else ""
            )
            rounds = ", ".join(
                f"{a / b - 1:+.1%}" for a, b in zip(recompute["generation_s"], uncached["generation_s"], strict=True)
            )
            lines.append(f"- {mode}: all-recompute costs {overhead:+.1%} against no cache (rounds: {rounds}){faults}.")
        if "all-replay" in named:
            lines.append(
                f"- {mode}: a step that replays everything costs "
                f"{named['all-replay']['median_replay_call_us'] / uncached['median_replay_call_us']:.1%} "
                "of an uncached step (median calls after the first)."
            )
        for name, cell in named.items():
            if name.startswith("fbcache"):
                lines.append(
                    f"- {mode}: diffusers' First Block Cache (`{name}`, `fullgraph=False`) "
                    f"{x(cell['measured_speedup_vs_same_mode_uncached'])} measured, with "
                    f"{cell['graph_breaks']} graph breaks."
                )
    losses = [
        f"`{mode}` `{name}` {x(cell['measured_speedup_vs_same_mode_uncached'])}"
        for mode, name, cell in ours
        if cell["measured_speedup_vs_same_mode_uncached"] < 0.98
    ]
    if losses:
        lines.append("- Slower than the same mode's uncached model: " + ", ".join(losses) + ".")
    return lines


def gpu_status() -> str:
    """What is known from ``benchmarks/gpu.sh``, from whether its results file exists (never a number by hand)."""
    if (RESULTS / "gpu.jsonl").exists():
        return "Its GPU records are in `benchmarks/results/gpu.jsonl`."
    return "It has not yet run on a GPU: there are no GPU numbers for compiled ecad yet."


def replay_floor_findings(record: Record) -> list[str]:
    lines = []
    for mode, named in record["results"].items():
        uncached = named["no-cache"]["median_call_us"]
        parts = ", ".join(
            f"{name} {cell['median_call_us']:.0f} us ({pct(cell['of_uncached_call'])})"
            for name, cell in named.items()
            if name != "no-cache"
        )
        lines.append(f"- {mode}: against an uncached call of {uncached:.0f} us: {parts}.")
    copied = record.get("stacked_store_copy")
    if copied:
        lines.append(
            f"- A stacked store's copy at `{copied['preset']}` {copied['size']} px ({copied['tokens']} tokens, one "
            f"block, eager): {copied['copy_ms']:.2f} ms against {copied['components_ms']:.1f} ms of the components "
            f"that produce the outputs ({pct(copied['copy_over_components'])} more per computed step)."
        )
    return lines


def ray_findings(record: Record) -> list[str]:
    return [
        f"- {record['workers_1']['per_second']:.2f} candidates/s with one worker, "
        f"{record['workers_2']['per_second']:.2f} with two ({x(record['ratio_2_over_1'])})."
    ]


BENCHMARKS = (
    Benchmark(
        "delivered",
        "Delivered speedup",
        "Each schedule (FORA, random densities, searched fronts) against no caching on the same pipeline, timed "
        "in interleaved round-robin repeats in one process: the measured transformer-only and end-to-end "
        "speedups next to the MAC speedup the cost model predicts and the Amdahl bound from the measured time "
        "outside the transformer. Speedups here are **measured** unless labelled MAC.",
        "`transformer_efficiency` is measured transformer speedup / MAC speedup. It is below 1 because a step "
        "in which every component replays is not free (gates, residual adds, embeddings); it falls as "
        "schedules get sparser. Rely on measured numbers for a deployment decision, and on `--cost latency` in "
        "the search when you want the front in time rather than MACs. The record with `compile` set was timed "
        "under an earlier runtime in which every hooked component was a graph break; for compiled timings of "
        "the current runtime see [Compiled runtime](compiled.md).",
        delivered_findings,
    ),
    Benchmark(
        "peers",
        "Against other caches",
        "ecad's searched front against the caches users already run (diffusers' First Block Cache, PAB, "
        "FasterCache, TaylorSeer, MagCache; cache-dit's DBCache) and FORA, through one `ecad eval` on held-out "
        "captions: quality is tiny-reward's share judged matching (**held-out**), speedups are **measured** "
        "(whole pipeline call, interleaved rounds) and **MAC** (executed MACs counted while generating).",
        "Each peer row is compared with the ecad front point nearest to it in speed; `verdict` is win, tie or "
        "loss by the paired 95% interval of the difference.",
        peers_findings,
        "peers.png",
        (
            "source",
            "tiny_reward",
            "nearest_ecad_by_macs_speedup",
            "nearest_ecad_by_speedup.macs_speedup",
            "nearest_ecad_by_speedup.match_rate",
        ),
    ),
    Benchmark(
        "search_dominance",
        "Does the search beat the heuristics?",
        "A search's front on the training captions (**calibration**) re-scored on held-out captions it never "
        "saw (**held-out**), with 95% Wilson intervals and the paired difference to no caching, and each "
        "point timed end to end (**measured**).",
        "Calibration quality overstates held-out quality for the sparsest points: pick on held-out numbers "
        "(`ecad eval`). Records are listed newest first; each is its own search.",
        dominance_findings,
    ),
    Benchmark(
        "search_efficiency",
        "Search cost: paper, fast and race",
        "The paper's search against `--strategy race` (and variants) per seed in one process: each run's front "
        "is re-scored on held-out captions after every generation, so hypervolume can be compared at equal "
        "compute (image-equivalents: one uncached image at the calibration call).",
        "Racing reaches the paper search's final held-out front with a fraction of its compute; the fraction "
        "depends on the calibration set and was measured on tiny-shapes only.",
        efficiency_findings,
        "search_efficiency.png",
    ),
    Benchmark(
        "cost_fidelity",
        "Which cost predicts time?",
        "For FORA, component intervals, TGATE, Delta-DiT, random densities and searched fronts: measured "
        "transformer seconds divided by each cost objective's prediction (`macs`: no-cache time scaled by the "
        "MAC fraction; `latency`: the latency table measured on the device).",
        "A ratio of 1 is a perfect prediction.",
        cost_fidelity_findings,
    ),
    Benchmark(
        "overhead",
        "Runtime overhead",
        "An all-recompute schedule under ecad's hooks against the plain pipeline, interleaved in one process.",
        "Ratios near 1 mean the hooks themselves cost nothing measurable.",
        overhead_findings,
    ),
    Benchmark(
        "memory",
        "Cache memory",
        "Bytes the cache holds after a generation against the formula passes x sum of output sizes x element "
        "size, and the effect of a float16 cache on the images.",
        "Budget the cache with `handle.cache_bytes()` and the formula in the runtime guide.",
        memory_findings,
    ),
    Benchmark(
        "compiled",
        "Compiled runtime",
        "The transformer eager, compiled whole and compiled regional (`ecad.compile_transformer`, "
        "`fullgraph=True`), each under no cache and cache schedules, in a pipeline's denoising loop (its "
        "scheduler drives ecad's step clock) and timed without text encoding and decoding: graph breaks, "
        "graphs compiled, graphs compiled again by a second generation, compile seconds, the median call after "
        "the first (`median_replay_call_us`; all-replay: a step that replays everything), minor page faults per "
        "generation, and the **measured** speedup against the *same mode's* uncached model, next to the **MAC** "
        "speedup; delivery is measured / MAC. Within a mode the schedules run in interleaved rounds; the modes "
        "run one after another, so compare absolute times across modes loosely (a wide spread in a row means "
        "other work shared the machine). diffusers' First Block Cache (`fbcache:T`) runs on its own copy, "
        "compiled with `fullgraph=False`, in a pass of its own against that pass's uncached model. "
        "`pixart-alpha` is the PixArt-XL-2 architecture at 256 px with random weights (speed does not depend on "
        "weights); `stand-in` is a 28-block PixArt with tiny tensors, where the host is the limit (as on a GPU "
        "at small batch). `python_per_call` counts what ecad's runtime runs in Python in one call. "
        "`benchmarks/gpu.sh` runs the same benchmark on a GPU (PixArt-XL-2 at 256 and 1024 px, FLUX.1-dev "
        "at 1024 px, bfloat16, eager, regional, and whole with CUDA graphs). " + gpu_status(),
        "Compiled, ecad breaks no graph and compiles nothing in a second generation, in every mode; First Block "
        "Cache breaks the graph where it decides. At PixArt-XL's real shapes, regional compilation keeps each "
        "schedule's MAC speedup (delivery near 1) and all-recompute costs about what no cache does. Where the "
        "host is the limit (stand-in, tiny-shapes) a step that replays everything is not free: its compiled "
        "graph is a handful of kernels, but the host still checks the guards of, and passes, every kept output "
        "and parameter it reads, so delivery falls as schedules get sparser. On a CPU, glibc's malloc returns "
        "memory to the system and faults it back in, with or without a cache, which makes eager rounds noisy; "
        "the records with `MALLOC_*` settings show the same measurement with the allocator keeping its pages. "
        "These are CPU numbers: time your own model on your device, compiled and not, before you choose.",
        compiled_findings,
        reshape=compiled_rows,
        group=compiled_group,
    ),
    Benchmark(
        "replay_floor",
        "Replay floor",
        "How little a compiled step that replays everything can cost where the host is the limit (`stand-in`, a "
        "28-block PixArt with tiny tensors): ecad's all-replay step beside two hook-free floors that run the "
        "adapter's own skip forward with every component replayed from module buffers, one per kept output "
        "(`floor-per-component`, as ecad keeps them) or one stacked buffer per block (`floor-stacked`); all "
        "compiled the same way, interleaved rounds, the median call after a generation's first (**measured**). "
        "`stacked_store_copy` times what a stacked store adds at every step that computes: copying each computed "
        "output into the block's buffer, at a real architecture's shapes.",
        "Under `torch.compile` every call checks dynamo's guards and hands the graph each tensor it reads, so a "
        "replayed step's cost grows with the number of kept outputs and of hooked blocks it passes through: the "
        "gap between `floor-per-component` and `floor-stacked` is the price of one tensor per output, the gap "
        "between ecad and `floor-per-component` the price of the hooks (diffusers' hook wrappers on each block "
        "and ecad's per-block state). On a GPU with CUDA graphs the guards remain and the kernels' launches go.",
        replay_floor_findings,
    ),
    Benchmark(
        "forecast",
        "Forecasting: two actions against three",
        "The same search with actions reuse/recompute and with forecast added, every front point and the FORA "
        "and TaylorSeer baselines re-scored on held-out captions (**held-out**; speedups are **MAC**).",
        "`--actions reuse,forecast` is offered, not the default: on tiny-shapes forecasting loses to reuse.",
        forecast_findings,
    ),
    Benchmark(
        "demo_time",
        "Time of the main job",
        "`ecad --help` and `ecad demo` end to end, each a fresh process.",
        "The demo's search is small on purpose; a real search is hours on a GPU (see the your-own-model guide).",
        demo_time_findings,
    ),
    Benchmark(
        "first_candidate",
        "The search's first candidate",
        "Seconds of the first search candidates with and without the warm-up call before the first one.",
        "`first_over_rest` > 1: the first candidate still pays one-time costs, which the ETA leaves out.",
    ),
    Benchmark(
        "ray_throughput",
        "Ray throughput",
        "Candidates per second with one and two Ray workers on the same machine.",
        "Throughput grows with workers; on GPUs use one worker per GPU.",
        ray_findings,
    ),
    Benchmark(
        "surrogate_screening",
        "Surrogate ranking (measured before building --screen)",
        "Ridge regression from schedule bits to quality, fitted on earlier evaluations: Spearman rank "
        "correlation with measured quality on held-back evaluations, against the cost fraction alone.",
        "The ranking is only slightly better than cost alone; `--screen` exists but did not help a search on "
        "tiny-shapes.",
    ),
    Benchmark(
        "race_rungs",
        "A second racing rung (estimate)",
        "Replays a second successive-halving rung on completed race runs' own trajectories: candidates it "
        "would have cut, compute saved, and final-front schedules it would have lost. No images generated.",
        "A second rung saves some compute but cuts final-front schedules, so it is not built.",
    ),
    Benchmark(
        "proxy_correlation",
        "A cheap quality proxy (measured before building)",
        "Latent error against the uncached trajectory as a stand-in for the metric: rank correlation with "
        "tiny-reward on rows it did not see, and a leave-one-out replay of a race that uses it.",
        "The proxy rejects fewer candidates than the metric's own first stage, so it is not in the search.",
    ),
)


def benchmark_page(bench: Benchmark, records: list[Record]) -> str:
    newest = records[-1]
    lines = [
        f"# {bench.title}",
        "",
        f"*Generated from `benchmarks/results/{bench.name}.jsonl` by "
        "`scripts/docs_pages.py`; rerun the benchmark with `--save` and regenerate.*",
        "",
        "## What is measured",
        "",
        bench.what,
        "",
        f"Script: `benchmarks/{bench.name}.py`.",
        "",
        "## What it means for you",
        "",
        bench.reading,
        "",
    ]
    groups = {bench.group(r): r for r in records} if bench.group else {"": newest}
    for group, record in groups.items() if bench.findings else ():
        lines += [
            f"From the newest run{f' of {group}' if group else ''} ({record['date']}, {record['device']}, "
            f"{record['threads']} threads):",
            "",
            *bench.findings(record),
            "",
        ]
    if bench.image:
        lines += [f"![{bench.title}]({bench.image})", ""]
    for number, record in enumerate(reversed(records)):
        label = "Newest run" if number == 0 else f"Earlier run {len(records) - number} of {len(records)}"
        lines += [
            f"## {label}: {record['date']}",
            "",
            f"Machine: {record['device']}, {record['threads']} threads, torch {record['torch']}, diffusers "
            f"{record['diffusers']}.",
            "",
            *render_record(bench.reshape(record) if bench.reshape else record, bench.drop),
        ]
    return "\n".join(lines).rstrip() + "\n"


def benchmark_pages() -> dict[Path, bytes]:
    pages: dict[Path, bytes] = {}
    index = [
        "# Benchmarks",
        "",
        "Every page is generated from the results files in `benchmarks/results/`. Each says "
        "what was measured, on which machine and with which settings. Speedups are labelled **MAC** (a ratio of "
        "counted multiply-accumulates) or **measured** (timed); quality numbers are **calibration** (the prompts a "
        "search scored) or **held-out** (prompts it never saw). All were measured on CPU with the embedded "
        "`tiny-shapes` model unless a page says otherwise.",
        "",
        "| benchmark | newest run | machine |",
        "|---|---|---|",
    ]
    for bench in BENCHMARKS:
        records = [json.loads(line) for line in (RESULTS / f"{bench.name}.jsonl").read_text().splitlines() if line]
        pages[DOCS / "benchmarks" / f"{bench.name}.md"] = benchmark_page(bench, records).encode()
        index.append(
            f"| [{bench.title}]({bench.name}.md) | {records[-1]['date']} | {records[-1]['device']}, "
            f"{records[-1]['threads']} threads |"
        )
        if bench.image:
            pages[DOCS / "benchmarks" / bench.image] = (RESULTS / bench.image).read_bytes()
    pages[DOCS / "benchmarks" / "index.md"] = ("\n".join(index) + "\n").encode()
    return pages


# ------------------------------------------------------------------------------------------------ README headline
HEADLINE = ("<!-- headline:start -->", "<!-- headline:end -->")


def newest(name: str) -> Record:
    return json.loads((RESULTS / f"{name}.jsonl").read_text().splitlines()[-1])


def headline_table(pages: str) -> str:
    """The README's one results table: a searched schedule against no caching, FORA and the best other cache that
    keeps no caching's quality, each number labelled, from the newest search_dominance and peers records; ``pages``
    is where the benchmark pages are, relative to the page the table is on."""
    dominance, peers = newest("search_dominance"), newest("peers")
    rows = {r["schedule"]: r for r in dominance["rows"]}
    best = dominance["best_at_75_percent"]
    uncached = next(r for r in peers["rows"] if r["family"] == "no-cache")
    mild = [
        r
        for r in peers["rows"]
        if r["family"] not in ("ecad", "fora", "no-cache") and r["vs_no_cache"]["low"] <= 0 <= r["vs_no_cache"]["high"]
    ]
    peer = max(mild, key=lambda r: r["speedup"])

    def run(record: Record) -> str:
        return f"{record['device']} CPU, {record['threads']} threads, {record['date']}"

    def line(name: str, row: Record, record: Record, page: str) -> str:
        return (
            f"| {name} | {pct(row['heldout_matching'])} | {x(row['mac_speedup'])} | "
            f"{x(row['measured_end_to_end_speedup'])} | [{run(record)}]({pages}/{page}.md) |"
        )

    lines = [
        "| schedule on tiny-shapes (20 steps, 64 px, batch 8) | held-out quality: share judged matching | MAC "
        "speedup | measured speedup, end to end | machine, date |",
        "|---|---|---|---|---|",
        line("no caching", rows["no-cache"], dominance, "search_dominance"),
        line(f"ecad search (`{best['schedule']}`, best at >= 75% held-out)", best, dominance, "search_dominance"),
        line("FORA N=2 (recompute every 2nd step)", rows["fora-2"], dominance, "search_dominance"),
        line("FORA N=3", rows["fora-3"], dominance, "search_dominance"),
        f"| fastest other library's cache within no caching's interval (`{peer['name']}`; its no caching: "
        f"{pct(uncached['match_rate'])}) | {pct(peer['match_rate'])} | {x(peer['macs_speedup'])} | "
        f"{x(peer['speedup'])} | [{run(peers)}]({pages}/peers.md) |",
    ]
    return "\n".join(lines)


def with_headline(path: Path, pages: str) -> bytes:
    """``path`` with the headline table between its markers generated again."""
    text = path.read_text()
    start, end = text.index(HEADLINE[0]) + len(HEADLINE[0]), text.index(HEADLINE[1])
    return (text[:start] + "\n" + headline_table(pages) + "\n" + text[end:]).encode()


# ----------------------------------------------------------------------------------------------------------- CLI
def cli_page() -> bytes:
    sys.path.insert(0, str(ROOT / "src"))
    from ecad.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = [
        "# Command line",
        "",
        "*Generated from ecad's argparse parsers by `scripts/docs_pages.py`; `ecad COMMAND --help` prints the same.*",
        "",
        "Every bad input is one line on stderr naming the problem and the fix, and exit code 1; Ctrl-C exits with 130.",
        "",
    ]
    for name, command in sub.choices.items():
        formatter = command._get_formatter()
        usage = " ".join(command.format_usage().split())
        lines += [
            f"## `ecad {name}`",
            "",
            command.description or "",
            "",
            "```text",
            usage,
            "```",
            "",
            "| option | meaning |",
            "|---|---|",
        ]
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            invocation = formatter._format_action_invocation(action)
            text = formatter._expand_help(action) if action.help else ""
            lines.append(f"| `{fmt(invocation)}` | {fmt(' '.join(text.split()))} |")
        lines.append("")
    return ("\n".join(lines).rstrip() + "\n").encode()


def pages() -> dict[Path, bytes]:
    return {
        ROOT / "README.md": with_headline(ROOT / "README.md", "docs/benchmarks"),
        DOCS / "index.md": with_headline(DOCS / "index.md", "benchmarks"),
        DOCS / "reference" / "cli.md": cli_page(),
        **benchmark_pages(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed pages instead of writing")
    args = parser.parse_args()
    stale = []
    for path, content in pages().items():
        if args.check:
            if not path.exists() or path.read_bytes() != content:
                stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    if stale:
        print("stale docs pages (run `python scripts/docs_pages.py`): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
