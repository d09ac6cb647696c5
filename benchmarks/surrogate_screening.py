"""Issue 14's surrogate pre-screening, measured before it is built: can a model of quality from the schedule bits
rank new offspring?

    python benchmarks/surrogate_screening.py RUN_DIR [RUN_DIR ...] [--save]

Reads finished search runs of one setting (e.g. benchmarks/search_efficiency.py's, whose runs share their
calibration rows), takes every evaluation scored on the full calibration set, and fits ridge regression (numpy,
closed form, the penalty chosen by leave-one-out error on the training set) from the free bits of the schedule
encoding to quality. Reported: the Spearman rank correlation between predicted and measured quality on evaluations
held back from the fit, for two splits: each run's last generation's new candidates predicted from everything that
run evaluated before (what screening offspring would face), and 5-fold cross-validation over the pooled set (fixed
folds, seed 0). The same for the cost fraction alone as the predictor (quality falls as fewer components are
recomputed): a surrogate is only worth building if it ranks better than the cost does. No images are generated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from common import emit, environment  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import ecad  # noqa: E402
from ecad.models.loading import load_pipeline  # noqa: E402
from ecad.search import EvaluationStore, RunDirectory, schedule_from_key  # noqa: E402
from ecad.search.problem import ScheduleEncoding  # noqa: E402
from ecad.search.racing import on_every_row  # noqa: E402

PENALTIES = (0.1, 1.0, 10.0, 100.0)


def ridge(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Weights, intercept and penalty of the ridge fit whose leave-one-out squared error is lowest."""
    mean_x, mean_y = X.mean(axis=0), y.mean()
    Xc, yc = X - mean_x, y - mean_y
    best = None
    for penalty in PENALTIES:
        hat = Xc @ np.linalg.solve(Xc.T @ Xc + penalty * np.eye(X.shape[1]), Xc.T)
        loo = ((yc - hat @ yc) / (1 - np.diag(hat))) ** 2
        if best is None or loo.mean() < best[0]:
            best = (loo.mean(), penalty)
    penalty = best[1]
    w = np.linalg.solve(Xc.T @ Xc + penalty * np.eye(X.shape[1]), Xc.T @ yc)
    return w, mean_y - mean_x @ w, penalty


def rank_correlations(train: list[int], test: list[int], X: np.ndarray, y: np.ndarray, cost: np.ndarray) -> dict:
    w, b, penalty = ridge(X[train], y[train])
    predicted = X[test] @ w + b
    return {
        "train": len(train),
        "test": len(test),
        "penalty": penalty,
        "ridge_spearman": float(spearmanr(predicted, y[test]).statistic),
        "cost_spearman": float(spearmanr(cost[test], y[test]).statistic),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    config = RunDirectory(args.runs[0]).load_config()
    layout = ecad.model_layout(load_pipeline(config.model, device="cpu"))
    encoding = ScheduleEncoding(layout, config.num_steps, config.forecast_order)

    features, quality, cost, last, evaluated = {}, {}, {}, {}, {}
    for run in args.runs:
        generations = sorted((run / "generations").glob("[0-9][0-9][0-9][0-9].json"))
        seen: set[str] = set()
        for path in generations:
            new = [r["key"] for r in json.loads(path.read_text())["population"] if r["key"] not in seen]
            seen.update(new)
        last[run] = set(new)  # the last generation's new candidates
        store = EvaluationStore(run / "evaluations.sqlite")
        try:
            evaluated[run] = {e.key for e in store.evaluations() if on_every_row(e)}
            for e in store.evaluations():
                if on_every_row(e) and e.key not in features:
                    features[e.key] = encoding.encode(schedule_from_key(e.key, layout)).astype(float)
                    quality[e.key], cost[e.key] = e.quality, e.cost
        finally:
            store.close()
    keys = list(features)
    X, y = np.stack([features[k] for k in keys]), np.array([quality[k] for k in keys])
    c = np.array([cost[k] for k in keys])
    index = {k: i for i, k in enumerate(keys)}

    splits = {}
    for run in args.runs:
        test = [index[k] for k in last[run] & evaluated[run]]
        train = [index[k] for k in evaluated[run] - last[run]]  # what the run had evaluated before
        splits[f"last_generation:{run.name}"] = rank_correlations(train, test, X, y, c)
    folds = np.random.default_rng(0).permutation(len(keys)) % 5
    predicted, measured, costs = [], [], []
    for fold in range(5):
        train, test = list(np.flatnonzero(folds != fold)), list(np.flatnonzero(folds == fold))
        w, b, _ = ridge(X[train], y[train])
        predicted.extend(X[test] @ w + b)
        measured.extend(y[test])
        costs.extend(c[test])
    splits["5_fold"] = {
        "test": len(keys),
        "ridge_spearman": float(spearmanr(predicted, measured).statistic),
        "cost_spearman": float(spearmanr(costs, measured).statistic),
    }
    emit(
        "surrogate_screening",
        {
            "benchmark": "surrogate_screening",
            **environment(),
            "runs": [str(r) for r in args.runs],
            "model": config.model,
            "metric": config.metric,
            "evaluations": len(keys),
            "variables": encoding.n_var,
            "splits": splits,
        },
        args.save,
    )


if __name__ == "__main__":
    main()
