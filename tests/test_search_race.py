"""``--strategy race``: per-row metric scores, the paired decision, fronts of full-set scores only, compute counted
per generated row, and the same front after an interruption and a resume."""

import dataclasses
import json

import pytest
import torch
from test_search_strategy import (
    SHAPES_PROMPTS,
    assert_margin,
    run_files,
    stored,
    summaries,
)

from ecad.cli import main
from ecad.generation import Generated
from ecad.metrics import FidelityMetric, FidMetric, TinyRewardMetric
from ecad.search import SearchConfig, search
from ecad.search.racing import PENDING, REJECTED, QualityRace, first_rows, on_every_row
from ecad.search.store import Evaluation, EvaluationStore

RACE_ROWS = 4  # 2 prompts x 2 images: the first 2 rows are scored first, 2 are raced for


def race_config(strategy="race", **changes):
    """A tiny-shapes search at 32 px (population 4, 3 generations, 6 steps, 2 prompts x 2 images), in batches of the
    first stage's 2 rows; race with the t bound (confidence 0.95) and the first generation in full unless
    ``changes`` say otherwise. Racing decides on quality differences: tiny-shapes' are far above float noise (see
    ``assert_margin``)."""
    return SearchConfig(
        model="tiny-shapes",
        prompts=SHAPES_PROMPTS,
        population=4,
        generations=3,
        images_per_prompt=2,
        num_steps=6,
        height=32,
        width=32,
        guidance_scale=3.0,
        batch_size=2,
        device="cpu",
        strategy=strategy,
        **({"race_confidence": 0.95, "race_first_generation": False} | changes if strategy == "race" else changes),
    )


@pytest.fixture(scope="module")
def race_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("race") / "run"
    search(race_config(), out, progress=False)
    assert_margin(out)
    return out


def evaluation(cost, rows, **metrics):
    return Evaluation(
        "k", sum(rows) / len(rows), cost, {"row_quality": list(rows), "rows_scored": len(rows), **metrics}
    )


def test_the_paired_bound_rejects_only_a_candidate_a_cheaper_front_point_beats():
    race = QualityRace(rows=8, confidence=0.95)  # an eighth, at least 2: rows 0..1 first
    assert (race.first, race.rest) == (range(2), range(2, 8)) and first_rows(100) == 13
    race.set_front([evaluation(1.0, [0.9, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]), evaluation(3.0, [1.0] * 8)])
    worse = evaluation(2.0, [0.5, 0.41])  # 0.4 below the cheaper point on both rows: the bound is below 0
    assert race.decide(worse).metrics["race"] == REJECTED and max(race.upper_bounds(worse)) < 0
    noisy = evaluation(2.0, [0.5, 0.8])  # worse on average, but the two rows disagree too much to be sure
    assert race.decide(noisy).metrics["race"] == PENDING
    cheapest = evaluation(0.5, [0.0, 0.0])  # no front point costs as little: nothing to compare with
    assert race.upper_bounds(cheapest) == [] and race.decide(cheapest).metrics["race"] == PENDING
    # Only points that cost at most the candidate's cost count: the expensive one beats `worse` too, yet alone
    # it is no reason to reject (the candidate may still be on the front as the cheaper schedule).
    race.set_front([evaluation(3.0, [1.0] * 8)])
    assert race.decide(worse).metrics["race"] == PENDING

    first = evaluation(2.0, [0.5, 0.25], macs=10, compute=0.5, ssim=0.25)
    rest = evaluation(2.0, [1.0] * 6, macs=10, compute=1.5, ssim=1.0)
    both = race.complete(first, rest)
    assert both.quality == torch.tensor([0.5, 0.25] + [1.0] * 6).mean().item() and on_every_row(both)
    assert both.metrics["compute"] == 2.0 and both.metrics["macs"] == 10 and both.metrics["rows_scored"] == 8
    assert both.metrics["ssim"] == pytest.approx((2 * 0.25 + 6 * 1.0) / 8)
    with pytest.raises(ValueError, match="at least 3 calibration rows"):
        SearchConfig(model="m", prompts=["a", "b"], strategy="race")


def test_row_metrics_score_a_subset_of_rows_as_the_full_set():
    class Reward:  # a stand-in reward model: the score of each image is its mean pixel (plumbing only)
        def score(self, images, captions):
            return images.mean(dim=(1, 2, 3))

    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    latents = torch.rand(4, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    prompts = ["a", "b", "c", "d"]
    fidelity = FidelityMetric()
    fidelity.prepare(Generated(images, latents, prompts))
    for metric in (TinyRewardMetric(Reward()), fidelity):
        shifted = Generated((images * 0.9).clamp(0, 1), latents * 1.1, prompts)
        full = metric.rows(shifted)
        part = metric.rows(Generated(shifted.images[2:], shifted.latents[2:], prompts[2:], first=2))
        assert full.keys() == part.keys() and all(torch.equal(full[k][2:], part[k]) for k in full)
        assert metric(shifted) == {k: v.mean().item() for k, v in full.items()}


def test_race_fronts_hold_only_full_set_scores(race_run, capsys):
    evaluations = stored(race_run)
    rejected = [e for e in evaluations.values() if e.metrics.get("race") == REJECTED]
    assert rejected, "nothing was rejected: the test proves nothing"
    assert not [e for e in evaluations.values() if e.metrics.get("race") == PENDING]  # a finished run
    assert all(e.metrics["rows_scored"] == 2 and len(e.metrics["row_quality"]) == 2 for e in rejected)
    front = json.loads((race_run / "front.json").read_text())["front"]
    assert front and all(evaluations[r["key"]].metrics["rows_scored"] == RACE_ROWS for r in front)
    assert not {r["key"] for r in front} & {e.key for e in rejected}
    assert all("row_quality" not in r and "race" not in r for r in front)  # scores only
    for path in sorted((race_run / "generations").iterdir()):
        generation = json.loads(path.read_text())
        partial = {r["key"] for r in generation["population"] if "rows_scored" in r}
        assert partial <= {e.key for e in rejected}
    assert sum(s["rejected"] for s in summaries(race_run)) == len(rejected)
    assert main(["front", str(race_run)]) == 0
    listing = capsys.readouterr().out
    assert not any(e.key in listing for e in rejected) and "strategy race" in listing


def test_race_counts_only_the_rows_it_generates(race_run, tmp_path):
    """Full-set scores are the fast strategy's (the rows come in the same batches); a rejected candidate spends at
    most its MACs on the rows it was scored on; the generation files count everything stored."""
    fast = tmp_path / "fast"
    search(race_config(strategy="fast"), fast, progress=False)
    assert_margin(fast)
    raced, exact = stored(race_run), stored(fast)
    common = [k for k in raced if k in exact and on_every_row(raced[k])]
    assert len(common) >= 4 and all(raced[k].quality == exact[k].quality for k in common)
    image = json.loads((race_run / "front.json").read_text())["full_cost"]
    for e in raced.values():
        assert 0 < e.metrics["compute"] <= e.metrics["rows_scored"] * e.cost / image + 1e-12
    assert summaries(race_run)[-1]["compute_spent"] == pytest.approx(sum(e.metrics["compute"] for e in raced.values()))
    assert summaries(race_run)[-1]["compute_spent"] < summaries(fast)[-1]["compute_spent"]


class Interrupted(Exception):
    pass


def test_race_resumes_to_the_uninterrupted_front(race_run, tmp_path, monkeypatch):
    """Stopped by the budget in generation 1's first stage, then interrupted (an exception from the store) with
    candidates pending their second stage, and resumed: the same decisions, front and generation files."""
    out = tmp_path / "run"
    first = summaries(race_run)[0]["compute_spent"]
    result = search(race_config(budget=first + 0.1), out, progress=False)
    assert result.stopped and [p.name for p in (out / "generations").iterdir()] == ["0000.json"]

    original = EvaluationStore.put

    def put_then_fail(self, evaluation, replace=False):
        original(self, evaluation, replace)
        if evaluation.metrics.get("race") == PENDING:
            raise Interrupted

    monkeypatch.setattr(EvaluationStore, "put", put_then_fail)
    with pytest.raises(Interrupted):
        search(race_config(), out, resume=True, progress=False)
    monkeypatch.setattr(EvaluationStore, "put", original)
    assert any(e.metrics.get("race") == PENDING for e in stored(out).values())

    search(race_config(), out, resume=True, progress=False)
    assert run_files(out) == run_files(race_run)
    assert stored(out).keys() == stored(race_run).keys()
    assert {k: e.metrics.get("race") for k, e in stored(out).items()} == {
        k: e.metrics.get("race") for k, e in stored(race_run).items()
    }


def test_race_needs_a_per_row_metric(tmp_path):
    out = tmp_path / "fid"
    with pytest.raises(ValueError, match="not a mean of per-row scores.*--strategy fast"):
        search(race_config(), out, metric=FidMetric(feature=torch.nn.Flatten()), progress=False)
    assert not out.exists()


def test_a_first_generation_raced_against_itself_keeps_its_first_stage_pareto_set():
    """With no front yet, each candidate is compared with the generation's own (first rows, paired, cheaper or
    as cheap): under the means rule exactly the first stage's Pareto set goes on; a complete candidate's first rows
    count too, and the key that must be complete is never rejected."""
    race = QualityRace(rows=8, confidence=0.5, first_generation=True, complete=["no-cache"])
    assert race.among_generation and race.pend(evaluation(1.0, [0.1, 0.2])).metrics["race"] == PENDING

    def pending(key, cost, rows):
        return dataclasses.replace(race.pend(evaluation(cost, rows)), key=key)

    generation = [
        pending("cheap", 1.0, [0.5, 0.5]),
        pending("beaten", 2.0, [0.4, 0.5]),  # costs more than "cheap" and is worse on average: rejected
        pending("better", 2.0, [0.9, 0.7]),  # costs more and is better: goes on
        pending("no-cache", 4.0, [0.1, 0.1]),  # beaten by all, but always complete
        race.complete(pending("done", 3.0, [0.9, 0.9]), evaluation(3.0, [0.0] * 6)),  # first rows beat "late"
        pending("late", 3.5, [0.8, 0.9]),
    ]
    rejected = race.decide_among(generation)
    assert [e.key for e in rejected] == ["beaten", "late"] and all(e.metrics["race"] == REJECTED for e in rejected)
    assert race.decide_among([*generation[:1], *rejected]) == []  # decided already: as it was (a resumed run)
    race.set_front([generation[0]])
    assert not race.among_generation  # a front exists: the usual decisions
    assert not QualityRace(rows=8).among_generation
    with pytest.raises(ValueError, match="--race-first-generation set how --strategy race races"):
        SearchConfig(model="m", prompts=["a", "b"], strategy="fast", race_first_generation=True)


def test_a_raced_first_generation_spends_less_and_resumes_to_the_uninterrupted_front(race_run, tmp_path, monkeypatch):
    """``race_first_generation``: generation 0 rejects candidates after their first rows (no caching is scored in
    full), spends less than the unraced start, and an interruption between its first stages and its decisions
    resumes to the uninterrupted run's front, decisions and generation files."""
    config = race_config(race_confidence=0.5, race_first_generation=True)
    whole = tmp_path / "whole"
    search(config, whole, progress=False)
    assert_margin(whole)
    evaluations = stored(whole)
    first = summaries(whole)[0]
    assert first["rejected"] > 0 and first["compute_spent"] < summaries(race_run)[0]["compute_spent"]
    assert on_every_row(max(evaluations.values(), key=lambda e: e.cost))  # no caching
    front = {r["key"] for r in json.loads((whole / "front.json").read_text())["front"]}
    assert front and all(on_every_row(evaluations[k]) for k in front)

    out = tmp_path / "run"
    original = EvaluationStore.put
    puts = {"pending": 0}

    def fail_at_the_last_first_stage(self, evaluation, replace=False):
        original(self, evaluation, replace)
        puts["pending"] += evaluation.metrics.get("race") == PENDING
        if puts["pending"] == config.population:  # every first stage of generation 0 stored, nothing decided
            raise Interrupted

    monkeypatch.setattr(EvaluationStore, "put", fail_at_the_last_first_stage)
    with pytest.raises(Interrupted):
        search(config, out, progress=False)
    monkeypatch.setattr(EvaluationStore, "put", original)
    assert {e.metrics.get("race") for e in stored(out).values()} == {PENDING}
    search(config, out, resume=True, progress=False)
    assert run_files(out) == run_files(whole)
    assert {k: e.metrics.get("race") for k, e in stored(out).items()} == {
        k: e.metrics.get("race") for k, e in evaluations.items()
    }
