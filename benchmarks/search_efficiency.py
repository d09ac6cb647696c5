"""Issue 14's must-show: cheaper search strategies against the paper's, held-out hypervolume per image-equivalent.

    flock /tmp/ecad-cpu.lock python benchmarks/search_efficiency.py --out runs/efficiency [--save]
    ... --population 24 --prompts 16 --images-per-prompt 2 --generations 14 --heldout-every 16 \
        --variant point=race,race_rows=0.125,race_confidence=0.5,generations=28 \
        --variant lean=race,race_rows=0.125,race_confidence=0.5,screen=4 \
        --variant point0=race,race_rows=0.125,race_confidence=0.5,race_first_generation=true,generations=28

On tiny-shapes with tiny-reward at guidance 3, for each seed: the paper strategy and each cheaper variant (default:
the race strategy, exact shared-prefix reuse plus multi-fidelity racing, ecad.search.racing; ``--variant`` names
others: ``fast``, race with another first stage, surrogate screening, ecad.search.surrogate) run the same scaled
search, alternating which runs first, each timed by its own generation files (seconds spent searching, so a run
resumed in --out is timed as a whole; model loading and the reference images are left out). After every
generation the archive front of each run (every non-dominated schedule scored on the full calibration set, what
front.json holds) is re-scored on held-out captions the search never saw (every Nth caption of the heldout split, 1
image each, the same seeds for every schedule), and its held-out hypervolume (objectives -reward and MAC cost
fraction, reference point (0, 1): the area no caching at reward 0 bounds) is put against the image-equivalents the
run had spent by then (one = the MACs of one uncached image; a shared prefix counts once, a raced candidate counts
the rows it generated).

Also reported: the shared-prefix saving on its own (what fast would save on the paper run's own candidates, from the
prefix plan and the cost table: fast's evaluations are the paper's, tested), racing's rejection rate, the decisions
other first-stage fractions would have made on the candidates race completed (rejections, and final-front
schedules they would have lost), and the image-equivalents each strategy needs to reach the paper strategy's final
held-out hypervolume, as a fraction of paper's total and of what paper needed to first reach that value.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, emit, environment, tiny_search  # noqa: E402
from pymoo.indicators.hv import HV  # noqa: E402

import ecad  # noqa: E402
from ecad.generation import Calibration, CalibrationGenerator  # noqa: E402
from ecad.metrics import get_metric  # noqa: E402
from ecad.models.loading import load_pipeline  # noqa: E402
from ecad.models.tiny_shapes import GUIDANCE_SCALE  # noqa: E402
from ecad.models.tiny_shapes.scenes import all_captions  # noqa: E402
from ecad.search import (  # noqa: E402
    Evaluation,
    EvaluationStore,
    schedule_from_key,
    schedule_key,
)
from ecad.search.prefix import prefix_plan, runtime_table  # noqa: E402
from ecad.search.racing import REJECTED, QualityRace, first_rows, on_every_row  # noqa: E402
from ecad.search.records import archive_front  # noqa: E402
from ecad.validation import write_json  # noqa: E402

STEPS = 20


def generations(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "generations").glob("[0-9][0-9][0-9][0-9].json"))]


def fronts(run: Path) -> list[list[tuple[str, float]]]:
    """The archive front (key, cost fraction) after each generation, rebuilt from the generation files as
    run_search builds it (every schedule but no caching reuses something; raced-out rows carry rows_scored)."""
    archive: dict[str, tuple[None, np.ndarray, bool]] = {}
    out = []
    for generation in generations(run):
        for row in generation["population"]:
            archive.setdefault(
                row["key"],
                (
                    None,
                    np.array([-row["quality"], row["cost_fraction"]]),
                    row["cost_fraction"] < 1.0 and "rows_scored" not in row,
                ),
            )
        out.append([(k, float(archive[k][1][1])) for k in archive_front(archive)])
    return out


def stored(run: Path) -> dict[str, Evaluation]:
    store = EvaluationStore(run / "evaluations.sqlite")
    try:
        return {e.key: e for e in store.evaluations()}
    finally:
        store.close()


def prefix_saving(run: Path, layout: ecad.ModelLayout, table, rows: int) -> dict[str, float]:
    """What exact shared-prefix reuse (fast) saves on this run's own candidates: each generation's new ones planned
    as the evaluator plans them, the replayed steps' MACs counted per calibration row."""
    seen: set[str] = set()
    replayed = steps = saved = spent = 0.0
    image = table.full_step_macs * STEPS
    for generation in generations(run):
        new = list(dict.fromkeys(r["key"] for r in generation["population"] if r["key"] not in seen))
        seen.update(new)
        if not new:
            continue
        schedules = [schedule_from_key(k, layout) for k in new]
        for step in prefix_plan([runtime_table(s, layout) for s in schedules]):
            macs = table.step_macs(schedules[step.index])
            replayed += step.replay
            steps += len(macs)
            saved += rows * sum(macs[: step.replay]) / image
            spent += rows * sum(macs) / image
    return {"transformer_calls_replayed": replayed / steps, "image_equivalents_saved": saved / spent}


def racing_decisions(run: Path, config: Any, fractions: list[float]) -> dict:
    """Racing's rejection rate, and what other first-stage fractions would have decided on the candidates race
    scored on every row (the same reference fronts, the archive front at the start of each generation, and the same
    confidence)."""
    rows = len(config.prompts) * config.images_per_prompt
    evaluations = stored(run)
    final = {k for k, _ in fronts(run)[-1]}
    per_generation = fronts(run)
    seen: set[str] = set()
    new_total = rejected = 0
    simulated = {f: {"rejected": 0, "on_final_front": 0} for f in fractions}
    completed = 0
    for g, generation in enumerate(generations(run)):
        new = [k for k in dict.fromkeys(r["key"] for r in generation["population"]) if k not in seen]
        seen.update(new)
        new_total += len(new)
        rejected += sum(evaluations[k].metrics.get("race") == REJECTED for k in new)
        if g == 0:
            continue
        reference = [evaluations[k] for k, _ in per_generation[g - 1]]
        for key in new:
            evaluation = evaluations[key]
            if not on_every_row(evaluation):
                continue
            completed += 1
            for f in fractions:
                race = QualityRace(rows, first_rows(rows, f), config.race_confidence)
                race.set_front(reference)
                m = len(race.first)
                first = Evaluation(
                    key, evaluation.quality, evaluation.cost, {"row_quality": evaluation.metrics["row_quality"][:m]}
                )
                if race.decide(first).metrics.get("race") == REJECTED:
                    simulated[f]["rejected"] += 1
                    simulated[f]["on_final_front"] += key in final
    return {
        "new_candidates": new_total,
        "rejected": rejected,
        "rejection_rate": rejected / new_total,
        "completed_after_generation_0": completed,
        "other_fractions_on_completed": {str(f): v for f, v in simulated.items()},
    }


# How --variant reads a setting's value (the rest are floats).
VARIANT_SETTINGS = {"screen": int, "generations": int, "race_first_generation": lambda value: value == "true"}


def variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=STRATEGY[,SETTING=VALUE...]`` (settings of SearchConfig: race_rows, race_confidence,
    race_first_generation (true/false), screen, and generations when the variant runs longer than --generations)."""
    name, _, spec = text.partition("=")
    strategy, *pairs = spec.split(",")
    settings: dict[str, Any] = {"strategy": strategy}
    for pair in pairs:
        key, _, value = pair.partition("=")
        settings[key] = VARIANT_SETTINGS.get(key, float)(value)
    return name, settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/efficiency")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=16, help="calibration captions (the tiny-shapes prompt set)")
    parser.add_argument("--images-per-prompt", type=int, default=1)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument(
        "--variant",
        action="append",
        type=variant,
        help="a cheaper search to compare with paper: NAME=STRATEGY[,SETTING=VALUE...], e.g. "
        "lean=race,race_rows=0.125,race_confidence=0.5,screen=4 (repeatable; default race=race)",
    )
    parser.add_argument("--heldout-every", type=int, default=31, help="every Nth heldout caption (31: 16 captions)")
    parser.add_argument("--fractions", default="0.125,0.5", help="other first-stage fractions to simulate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = {"paper": {"strategy": "paper"}, **dict(args.variant or [("race", {"strategy": "race"})])}
    strategies = list(variants)
    out = Path(args.out)
    rows = args.prompts * args.images_per_prompt

    runs: dict[tuple[int, str], dict] = {}
    for seed in seeds:
        order = strategies if seed % 2 == 0 else strategies[::-1]  # alternating: neither always runs first
        for strategy in order:
            path = out / f"seed{seed}-{strategy}"
            settings = {"generations": args.generations, **variants[strategy]}
            config, result = tiny_search(
                path,
                args.prompts,
                population=args.population,
                images_per_prompt=args.images_per_prompt,
                guidance_scale=GUIDANCE_SCALE,
                seed=seed,
                **settings,
            )
            runs[seed, strategy] = {"path": path, "config": config, "evaluations": result.evaluations}

    pipe = load_pipeline("tiny-shapes", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    layout = ecad.model_layout(pipe)
    captions = all_captions("heldout")[:: args.heldout_every]
    generator = CalibrationGenerator(
        pipe, Calibration(tuple(captions), num_steps=STEPS, guidance_scale=GUIDANCE_SCALE, batch_size=16, seed=0)
    )
    calibration = CalibrationGenerator(
        pipe,
        Calibration(
            tuple(runs[seeds[0], strategies[0]]["config"].prompts), num_steps=STEPS, guidance_scale=GUIDANCE_SCALE
        ),
    )
    table = calibration.cost_table()
    metric = get_metric("tiny-reward")
    # held-out scores are kept in --out (per held-out caption set), so a rerun with longer runs scores only new fronts
    cache = out / f"heldout_every{args.heldout_every}.json"
    heldout: dict[str, float] = json.loads(cache.read_text()) if cache.exists() else {}

    def score(key: str) -> float:
        if key not in heldout:
            heldout[key] = float(metric(generator(schedule_from_key(key, layout)))["quality"])
            write_json(heldout, cache)  # atomic: an interrupted rerun never finds half a file
        return heldout[key]

    hv = HV(ref_point=np.array([0.0, 1.0]))
    results = []
    for seed in seeds:
        per_strategy = {}
        for strategy in strategies:
            run = runs[seed, strategy]
            summaries = [g["summary"] for g in generations(run["path"])]
            curve = []
            for g, front in enumerate(fronts(run["path"])):
                points = np.array([[-score(k), cost] for k, cost in front])
                curve.append(
                    {
                        "generation": g,
                        "compute_spent": summaries[g]["compute_spent"],
                        "heldout_hv": float(hv(points)),
                        "front_size": len(front),
                    }
                )
            # the search's own seconds (the generation files'), so that a resumed run is timed as a whole
            per_strategy[strategy] = {
                "search_s": sum(s["seconds"] for s in summaries),
                "evaluations": run["evaluations"],
                "compute_spent": summaries[-1]["compute_spent"],
                "curve": curve,
            }
        paper = per_strategy["paper"]
        target = paper["curve"][-1]["heldout_hv"]
        paper_first = next(p["compute_spent"] for p in paper["curve"] if p["heldout_hv"] >= target)
        entry = {
            "seed": seed,
            **per_strategy,
            "paper_final_heldout_hv": target,
            "paper_compute_to_first_reach_its_final_hv": paper_first,
            "prefix_saving_on_paper_candidates": prefix_saving(runs[seed, "paper"]["path"], layout, table, rows),
        }
        for strategy in strategies[1:]:
            reached = next(
                (p["compute_spent"] for p in per_strategy[strategy]["curve"] if p["heldout_hv"] >= target), None
            )
            entry[strategy].update(
                {
                    "compute_to_reach_paper_final_hv": reached,
                    "fraction_of_paper_total": reached / paper["compute_spent"] if reached is not None else None,
                    "fraction_of_paper_first_reach": reached / paper_first if reached is not None else None,
                    "final_heldout_hv": per_strategy[strategy]["curve"][-1]["heldout_hv"],
                    "search_s_vs_paper": per_strategy[strategy]["search_s"] / paper["search_s"],
                }
            )
            if variants[strategy]["strategy"] == "race":
                entry[strategy]["racing"] = racing_decisions(
                    runs[seed, strategy]["path"],
                    runs[seed, strategy]["config"],
                    [float(f) for f in args.fractions.split(",")],
                )
        results.append(entry)
    no_cache = score(schedule_key(layout.full_schedule(STEPS)))
    cheaper = strategies[1:]
    fractions = [r[s]["fraction_of_paper_total"] for r in results for s in cheaper]
    record = {
        "benchmark": "search_efficiency",
        **environment(),
        "population": args.population,
        "generations": args.generations,
        "calibration_prompts": args.prompts,
        "images_per_prompt": args.images_per_prompt,
        "steps": STEPS,
        "guidance": GUIDANCE_SCALE,
        "strategies": strategies,
        "variants": variants,
        "heldout_captions": len(captions),
        "heldout_no_cache_reward": no_cache,
        "heldout_schedules_scored": len(heldout),
        "seeds": results,
        "target_met": {
            s: all(
                r[s]["fraction_of_paper_total"] is not None and r[s]["fraction_of_paper_total"] <= 0.10 for r in results
            )
            for s in cheaper
        },
        "fractions_of_paper_total": fractions,
    }
    plot(record, RESULTS / "search_efficiency.png")
    emit("search_efficiency", record, args.save)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    styles = ["o-", "^-.", "s--", "d:", "v-"]
    for run in record["seeds"]:
        for strategy, style in zip(record["strategies"], styles, strict=False):  # styles to spare
            curve = run[strategy]["curve"]
            ax.plot(
                [p["compute_spent"] for p in curve],
                [p["heldout_hv"] for p in curve],
                style,
                label=f"{strategy}, seed {run['seed']}",
            )
    ax.set_xlabel("image-equivalents spent (one = one uncached image's MACs)")
    ax.set_ylabel(f"held-out hypervolume ({record['heldout_captions']} captions)")
    ax.set_title(
        f"tiny-shapes, tiny-reward: population {record['population']}, {record['generations']} generations, "
        f"{record['calibration_prompts']} captions x {record['images_per_prompt']} images",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
