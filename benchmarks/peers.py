"""Against what users would pick instead: ecad's searched front vs diffusers' and cache-dit's caches on tiny-shapes.

    python benchmarks/peers.py --out runs/peers [--front DIR] [--captions 248] [--max-new N] [--save]

Every method of ``ecad.peers`` at its default sweep (First Block Cache, PAB, FasterCache, TaylorSeer, MagCache from
diffusers; DBCache with and without its TaylorSeer calibrator from cache-dit), ecad's FORA N=2/3, and an ecad front
go through one ``ecad eval`` (``<out>/eval``): the same held-out captions (every other one of the 496, 1 image each)
and seeds, guidance 3, metric ``tiny-reward``, executed MACs counted while generating, latency timed in interleaved
rounds at the scored batch. The ecad front is ``--front DIR`` (schedule files, e.g. a run's ``front/``), else the
front of a search made here with the settings of ``search_dominance.py`` (training captions only).

Generating is resumable: ``--max-new N`` stops after N new rows so the job can be run in short pieces (each under
the shared CPU lock); a run with nothing left to generate measures latency and writes the result. Re-running with
another cost model re-prices the stored execution counts without generating again. Quality is the
share judged matching (``tiny-reward`` > 0.5); confidence intervals are paired bootstrap intervals over the same
captions, against no caching and against the ecad points nearest in measured speedup and in MAC speedup.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, emit, environment  # noqa: E402
from scipy.stats import bootstrap  # noqa: E402

from ecad.evaluation import EvalConfig, ImageStore, evaluate  # noqa: E402
from ecad.models.prompts import load_prompts  # noqa: E402
from ecad.models.tiny_shapes import GUIDANCE_SCALE, load_reward_model  # noqa: E402
from ecad.models.tiny_shapes.scenes import all_captions  # noqa: E402
from ecad.peers import PEERS  # noqa: E402
from ecad.report.plots import plot_eval  # noqa: E402
from ecad.search import SearchConfig, search  # noqa: E402

HEURISTICS = ("fora:2", "fora:3")


def ecad_front(args: argparse.Namespace) -> list[str]:
    """The schedule files of the ecad front: given, or searched here on training captions."""
    if args.front:
        return front_files(Path(args.front), args.front_min_match)
    run = Path(args.out) / "search"
    config = SearchConfig(
        model="tiny-shapes",
        prompts=load_prompts("tiny-shapes", limit=16),
        metric="tiny-reward",
        population=args.population,
        generations=args.generations,
        guidance_scale=GUIDANCE_SCALE,
        batch_size=16,
        device="cpu",
        strategy="paper",
    )  # as measured
    search(config, run, resume=(run / "config.json").exists(), progress=False)
    return front_files(run / "front", args.front_min_match)


def front_files(folder: Path, min_match: float) -> list[str]:
    """The front's schedule files (``NNN.json``); with ``min_match`` > 0 only those whose match rate on the search's
    own (training) captions, as ``front.json`` records it, reaches it: points that already fail there are not worth
    generating held-out images for."""
    files = sorted(folder.glob("[0-9]*.json"))
    if not files:
        raise SystemExit(f"--front {folder}: no schedule files (NNN.json) there.")
    if min_match > 0:
        recorded = json.loads((folder / "front.json").read_text())["front"]
        kept = {Path(r["file"]).name for r in recorded if r["match_rate"] >= min_match}
        files = [f for f in files if f.name in kept]
    return [str(f) for f in files]


def paired_interval(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean of a - b over the same captions with a 95% paired bootstrap interval."""
    diff = a.astype(float) - b.astype(float)
    if not diff.any():
        return {"mean": 0.0, "low": 0.0, "high": 0.0}
    ci = bootstrap((diff,), np.mean, n_resamples=10_000, method="percentile", random_state=0).confidence_interval
    return {"mean": float(diff.mean()), "low": float(ci.low), "high": float(ci.high)}


def verdict(interval: dict[str, float]) -> str:
    """ecad minus the other method: ecad wins when the whole interval is above 0, loses when below, else ties."""
    return "win" if interval["low"] > 0 else "loss" if interval["high"] < 0 else "tie"


def compare(report: dict, out: Path) -> list[dict]:
    """Per row: quality, speeds, and paired intervals against no caching and the nearest ecad points."""
    store = ImageStore(out)
    store.read()
    judge = load_reward_model()
    matches = {}
    for row in report["results"]:
        generated = store.load(row["name"])
        with torch.inference_mode():
            matches[row["name"]] = (judge.score(generated.images, list(generated.prompts)) > 0.5).numpy()
    ecad_rows = [r for r in report["results"] if r["family"] == "ecad"]
    rows = []
    for row in report["results"]:
        entry = {
            "name": row["name"],
            "family": row["family"],
            "source": row["source"],
            "match_rate": float(matches[row["name"]].mean()),
            "tiny_reward": row["metrics"]["tiny-reward"]["tiny_reward"],
            "macs_speedup": row["macs_speedup"],
            "speedup": row.get("speedup"),
            "recompute_fraction": row["recompute_fraction"],
            "vs_no_cache": paired_interval(matches[row["name"]], matches["no-cache"]),
        }
        if row["family"] not in ("ecad", "no-cache") and ecad_rows:
            for axis in ("speedup", "macs_speedup"):
                if row.get(axis):
                    nearest = min(ecad_rows, key=lambda r: abs(np.log(r[axis] / row[axis])))
                    interval = paired_interval(matches[nearest["name"]], matches[row["name"]])
                    entry[f"nearest_ecad_by_{axis}"] = {
                        "name": nearest["name"],
                        "speedup": nearest.get("speedup"),
                        "macs_speedup": nearest["macs_speedup"],
                        "match_rate": float(matches[nearest["name"]].mean()),
                        "ecad_minus_this": interval,
                        "verdict": verdict(interval),
                    }
        rows.append(entry)
    return rows


def _pct(interval: dict[str, float]) -> str:
    return f"{100 * interval['mean']:+.1f} [{100 * interval['low']:+.1f}, {100 * interval['high']:+.1f}]"


def markdown(rows: list[dict]) -> str:
    """The comparison as the README shows it: one line per row, percentage points with 95% paired intervals, and
    the ecad front point nearest in measured speedup and in MAC speedup."""
    lines = [
        "| row | measured speedup | MAC speedup | judged matching | vs no cache (pts) | ecad nearest in measured "
        "speed: minus row (pts) | ecad | ecad nearest in MACs: minus row (pts) | ecad |",
        "|" + "---|" * 9,
    ]
    for r in rows:
        cells = [
            r["name"],
            f"{r['speedup']:.2f}x" if r.get("speedup") else "–",
            f"{r['macs_speedup']:.2f}x",
            f"{100 * r['match_rate']:.1f}%",
            _pct(r["vs_no_cache"]),
        ]
        for axis in ("speedup", "macs_speedup"):
            near = r.get(f"nearest_ecad_by_{axis}")
            cells += (
                [f"{near['name']} ({near[axis]:.2f}x): {_pct(near['ecad_minus_this'])}", near["verdict"]]
                if near
                else ["–", "–"]
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/peers")
    parser.add_argument("--front", help="folder of ecad schedule files to compare (default: search one here)")
    parser.add_argument(
        "--front-min-match",
        type=float,
        default=0.0,
        help="only front points whose recorded match rate on the training captions reaches this",
    )
    parser.add_argument("--population", type=int, default=12, help="search here: population (search_dominance's)")
    parser.add_argument("--generations", type=int, default=6, help="search here: generations")
    parser.add_argument("--captions", type=int, default=248, help="held-out captions (every other one of the 496)")
    parser.add_argument("--families", default=",".join(PEERS), help="peer methods (default sweeps), comma-separated")
    parser.add_argument(
        "--settings",
        nargs="*",
        default=[],
        metavar="SPEC",
        help="peer settings instead of --families' default sweeps, e.g. fbcache:0.1 dbcache:1,0,0.16",
    )
    parser.add_argument("--batch", type=int, default=8, help="images per pipeline call, scored and timed")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--max-new", type=int, help="stop after generating this many new rows (resume later)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--figure", default="docs/images/peers.png")
    parser.add_argument(
        "--save",
        action="store_true",
        help="append the JSON to benchmarks/results/peers.jsonl; keep the eval table and the "
        "comparison table beside it",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("ecad").setLevel(logging.INFO)

    front = ecad_front(args)
    captions = all_captions("heldout")[::2][: args.captions]
    # a family's name alone: its default sweep
    baselines = [*HEURISTICS, *(args.settings or args.families.split(","))]
    settings = dict(
        model="tiny-shapes",
        prompts=captions,
        metrics=["tiny-reward"],
        num_steps=20,
        guidance_scale=GUIDANCE_SCALE,
        batch_size=args.batch,
        warmup=args.warmup,
        device="cpu",
    )
    out = Path(args.out) / "eval"
    config = EvalConfig(**settings, baselines=baselines, schedules=front, repeats=args.repeats)
    report = evaluate(config, out, max_new=args.max_new)
    if report is None:
        print(f"generated {args.max_new} new rows; run again to continue", file=sys.stderr)
        return
    plot_eval(
        report,
        Path(args.figure),
        column="match_rate",
        title=f"tiny-shapes, {len(captions)} held-out captions, guidance {GUIDANCE_SCALE:g}, 20 steps",
    )
    rows = compare(report, out)
    if args.save:
        (RESULTS / "peers_eval.md").write_text((out / "results.md").read_text())
        (RESULTS / "peers_table.md").write_text(markdown(rows))
    emit(
        "peers",
        {
            "benchmark": "peers",
            **environment(),
            "captions": len(captions),
            "guidance": GUIDANCE_SCALE,
            "steps": 20,
            "batch": args.batch,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "baselines": baselines,
            "front": args.front or "searched here",
            "front_min_match": args.front_min_match,
            "eval_dir": str(out),
            "latency": report["environment"],
            "rows": rows,
        },
        args.save,
    )


if __name__ == "__main__":
    main()
