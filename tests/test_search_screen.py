"""``--screen K`` (surrogate pre-screening) and the race's tunable first stage: the ridge surrogate, the screened
mating, exact resume, and the settings' checks."""

import numpy as np
import pytest
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.crossover.pntx import PointCrossover
from pymoo.operators.mutation.bitflip import BitflipMutation
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from scipy.stats import spearmanr
from test_search_race import evaluation
from test_search_strategy import run_files, summaries, tiny_config

from ecad.cli import main
from ecad.search import SearchConfig, search
from ecad.search.racing import PENDING, REJECTED, QualityRace
from ecad.search.surrogate import MIN_SAMPLES, PENALTIES, RidgeSurrogate, ScreenedMating, features


def linear_objectives(X, seed=0):
    """Quality falls with the bits reused, by a weight per gene; cost is the share of bits recomputed."""
    weights = np.random.default_rng(seed).uniform(0.0, 1.0, X.shape[1])
    return np.stack([-(X.astype(float) @ weights), X.mean(axis=1)], axis=1)


def test_the_ridge_surrogate_ranks_unseen_schedules_of_a_linear_objective():
    rng = np.random.default_rng(0)
    X = rng.random((200, 30)) < 0.5
    F = linear_objectives(X)
    surrogate = RidgeSurrogate(values=2)
    surrogate.fit(X[: MIN_SAMPLES - 1], F[: MIN_SAMPLES - 1])
    assert not surrogate.fitted  # too few evaluated schedules to screen with
    surrogate.fit(X[:120], F[:120])
    predicted = surrogate.predict(X[120:])
    assert spearmanr(predicted[:, 0], F[120:, 0]).statistic > 0.98
    assert np.abs(predicted[:, 1] - F[120:, 1]).max() < 0.02
    assert surrogate.penalty == PENALTIES[0]  # no noise: the least shrinkage predicts left-out samples best

    noisy = F + np.stack([rng.normal(0, 20.0, len(F)), np.zeros(len(F))], axis=1)  # noise swamps the signal
    surrogate.fit(X[:120], noisy[:120])
    assert surrogate.penalty > PENALTIES[0]
    # three actions: recompute and forecast are separate columns
    assert features(np.array([[0, 1, 2]]), 3).tolist() == [[0, 1, 0, 0, 0, 1]]


class Spy:
    """A mating that keeps what it made."""

    def __init__(self, mating):
        self.mating, self.made = mating, None

    def do(self, *args, **kwargs):
        self.made = self.mating.do(*args, **kwargs)
        return self.made


def test_screened_mating_evaluates_the_offspring_the_surrogate_ranks_best():
    n_var, pop_size = 24, 10
    problem = Problem(n_var=n_var, n_obj=2, xl=0, xu=1, vtype=bool)
    rng = np.random.default_rng(1)
    X = rng.random((60, n_var)) < 0.5
    surrogate = RidgeSurrogate(values=2)
    surrogate.fit(X, linear_objectives(X))
    algorithm = NSGA2(
        pop_size=pop_size, crossover=PointCrossover(n_points=2), mutation=BitflipMutation(), eliminate_duplicates=True
    )
    algorithm.setup(problem, seed=0)
    pop = RankAndCrowding().do(problem, Population.new(X=X[:pop_size], F=linear_objectives(X[:pop_size])))
    spy = Spy(algorithm.mating)
    screened = ScreenedMating(spy, surrogate, factor=4)
    kept = screened.do(problem, pop, pop_size, random_state=np.random.default_rng(5), algorithm=algorithm)
    made = spy.made
    assert len(kept) == pop_size and screened.screened == len(made) == 4 * pop_size
    # what is kept is a subset of what was made, and no dropped offspring is predicted to be in a better
    # non-dominated rank than a kept one
    made_keys = [x.tobytes() for x in made.get("X")]
    kept_index = [made_keys.index(x.tobytes()) for x in kept.get("X")]
    ranks = np.empty(len(made), dtype=int)
    for rank, front in enumerate(NonDominatedSorting().do(surrogate.predict(made.get("X")))):
        ranks[front] = rank
    dropped = np.setdiff1d(np.arange(len(made)), kept_index)
    assert ranks[kept_index].max() <= ranks[dropped].min()

    unfit = ScreenedMating(algorithm.mating, RidgeSurrogate(values=2), factor=4)
    assert len(unfit.do(problem, pop, pop_size, random_state=np.random.default_rng(5), algorithm=algorithm)) == pop_size
    assert unfit.screened == pop_size  # nothing to rank with: the ordinary mating


@pytest.fixture(scope="module")
def screen_run(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("screen") / "run"
    search(tiny_config(tiny_model_dir, strategy="fast", screen=3, generations=4), out, progress=False)
    return out


def test_screening_changes_the_evaluated_offspring_and_records_it(screen_run, tiny_model_dir, tmp_path):
    plain = tmp_path / "plain"
    search(tiny_config(tiny_model_dir, strategy="fast", generations=4), plain, progress=False)
    screened = summaries(screen_run)
    # population 4: generation 2 is the first with MIN_SAMPLES evaluated schedules to fit on
    assert [s.get("screened") for s in screened][:2] == [None, None]
    assert all(s["screened"] > 4 for s in screened[2:])
    assert run_files(screen_run)["generations"][:2] == run_files(plain)["generations"][:2]
    assert run_files(screen_run)["generations"][2:] != run_files(plain)["generations"][2:]


def test_a_screened_run_resumes_to_the_uninterrupted_front(screen_run, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    spent = summaries(screen_run)[1]["compute_spent"]
    config = tiny_config(tiny_model_dir, strategy="fast", screen=3, generations=4)
    result = search(
        tiny_config(tiny_model_dir, strategy="fast", screen=3, generations=4, budget=spent + 0.01), out, progress=False
    )
    assert result.stopped and len(summaries(out)) == 2  # stopped inside the first screened generation
    before = summaries(out)
    search(config, out, resume=True, progress=False)
    assert run_files(out) == run_files(screen_run)
    # the replayed generations keep the time and evaluations they took, not the replay's (nothing, instantly)
    kept = [{k: s[k] for k in ("seconds", "new_evaluations")} for s in summaries(out)[:2]]
    assert kept == [{k: s[k] for k in ("seconds", "new_evaluations")} for s in before]
    assert all(s["new_evaluations"] > 0 and s["seconds"] > 0 for s in summaries(out)[:2])


def test_the_race_first_stage_is_a_setting():
    front = [evaluation(1.0, [0.9] * 8)]
    noisy = evaluation(2.0, [0.5, 1.0])  # below the cheaper point on average, rows disagree
    bound, point = QualityRace(rows=8, confidence=0.95), QualityRace(rows=8, confidence=0.5)
    bound.set_front(front), point.set_front(front)
    assert bound.decide(noisy).metrics["race"] == PENDING
    assert point.decide(noisy).metrics["race"] == REJECTED  # 0.5: the first rows' means decide
    assert QualityRace(rows=32, first=4).first == range(4)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"strategy": "paper", "screen": 2}, "--strategy paper is the paper's search unchanged"),
        ({"strategy": "fast", "race_rows": 0.25}, "this run's strategy is fast: add --strategy race"),
        ({"strategy": "race", "race_confidence": 0.4}, "race_confidence must be a finite number >= 0.5"),
        ({"strategy": "race", "race_rows": 0.0}, "race_rows must be a finite number > 0"),
    ],
)
def test_screen_and_race_settings_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(model="m", prompts=["a", "b", "c"], **changes)


def test_the_cli_refuses_screening_the_paper_strategy(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "search",
                "--model",
                "tiny-shapes",
                "--prompts",
                "tiny-shapes",
                "--limit",
                "2",
                "--strategy",
                "paper",
                "--screen",
                "2",
                "--out",
                str(out),
            ]
        )
        != 0
    )
    assert "--screen" in capsys.readouterr().err and not out.exists()


def test_the_cli_passes_the_race_and_screen_settings_and_resume_keeps_them(tmp_path):
    from ecad.cli import build_parser
    from ecad.cli.search import config_from_args
    from ecad.search import RunDirectory

    out = tmp_path / "run"
    args = build_parser().parse_args(
        [
            "search",
            "--model",
            "m",
            "--prompts",
            "tiny-shapes",
            "--limit",
            "3",
            "--strategy",
            "race",
            "--race-rows",
            "0.5",
            "--race-confidence",
            "0.5",
            "--race-first-generation",
            "--screen",
            "3",
            "--out",
            str(out),
        ]
    )
    config = config_from_args(args)
    assert (config.race_rows, config.race_confidence, config.race_first_generation, config.screen) == (
        0.5,
        0.5,
        True,
        3,
    )
    RunDirectory(out).open(config, resume=False)
    RunDirectory(out).commit(config)
    resumed = config_from_args(build_parser().parse_args(["search", "--model", "m", "--out", str(out), "--resume"]))
    assert resumed == config
