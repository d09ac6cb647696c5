"""What a finished search reports, checked by brute force: the front is the Pareto front of everything in the
evaluation store, the hypervolumes are the areas that front dominates, and a store of another schema is refused."""

import json
import sqlite3

import pytest

from ecad import CacheSchedule
from ecad.schedule import ModelLayout
from ecad.search import CorruptRunError, EvaluationStore, schedule_from_key, schedule_key
from ecad.search.store import SCHEMA_VERSION


def staircase_hypervolume(points, reference):
    """Area dominated by 2-D points (both objectives minimised) up to ``reference``, summed strip by strip."""
    inside = sorted((c, f) for f, c in points if f < reference[0] and c < reference[1])
    area, best = 0.0, reference[0]
    for (cost, f), (next_cost, _) in zip(inside, inside[1:] + [(reference[1], None)], strict=False):  # none inside: 0
        best = min(best, f)
        area += (reference[0] - best) * (next_cost - cost)
    return area


def test_staircase_hypervolume_on_a_hand_computed_case():
    # (-quality, cost): strips 0.1-0.2 at height 0.5, 0.2-0.6 at 0.9, 0.6-1.0 at 0.95 => 0.05 + 0.36 + 0.38
    points = [(-0.9, 0.2), (-0.5, 0.1), (-0.95, 0.6), (-0.4, 0.5)]  # the last is dominated
    assert staircase_hypervolume(points, (0.0, 1.0)) == pytest.approx(0.79, abs=1e-12)
    assert staircase_hypervolume([(0.5, 0.5)], (0.0, 1.0)) == 0.0  # outside the reference box


def run_layout(run):
    first = json.loads((run / "front.json").read_text())["front"][0]
    template = CacheSchedule.load(run / first["file"])
    return ModelLayout(template.block_names, template.component_names, template.exists)


def feasible(key, layout):
    """The search's constraint, from the bits: at least one existing component reused at a step after 0."""
    bits = schedule_from_key(key, layout).effective()[1:]
    return not bool(bits[layout.exists.expand_as(bits)].all())


def pareto_keys(rows):
    """Brute force: rows (key, quality, cost) that no other row beats in one objective while matching the other."""
    return {k for k, q, c in rows if not any(q2 >= q and c2 <= c and (q2 > q or c2 < c) for _, q2, c2 in rows)}


def test_front_is_the_pareto_front_of_the_evaluation_store(tiny_run):
    layout = run_layout(tiny_run)
    with sqlite3.connect(tiny_run / "evaluations.sqlite") as db:
        rows = db.execute("SELECT key, quality, cost FROM evaluations").fetchall()
    candidates = [row for row in rows if feasible(row[0], layout)]
    assert len(candidates) < len(rows)  # no caching is in the store but may not be on the front
    front = json.loads((tiny_run / "front.json").read_text())["front"]
    assert {row["key"] for row in front} == pareto_keys(candidates)
    stored = {k: (q, c) for k, q, c in rows}
    assert all((row["quality"], row["cost"]) == stored[row["key"]] for row in front)
    assert all(schedule_key(CacheSchedule.load(tiny_run / row["file"])) == row["key"] for row in front)


def test_hypervolumes_are_the_areas_each_generations_front_dominates(tiny_run):
    layout = run_layout(tiny_run)
    generations = [json.loads(p.read_text()) for p in sorted((tiny_run / "generations").glob("*.json"))]
    first = [(-row["quality"], row["cost_fraction"]) for row in generations[0]["population"]]
    reference = (max(f for f, _ in first) + 1e-9, 1.0 + 1e-9)  # the run's rule: fixed by generation 0
    seen = {}
    for generation in generations:
        for row in generation["population"]:
            seen.setdefault(row["key"], (row["quality"], row["cost_fraction"]))
        rows = [(k, q, c) for k, (q, c) in seen.items() if feasible(k, layout)]
        front = [(-q, c) for k, q, c in rows if k in pareto_keys(rows)]
        expected = staircase_hypervolume(front, reference)
        assert generation["summary"]["hypervolume"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
        assert generation["summary"]["front_size"] == len(front)
    assert generations[-1]["summary"]["hypervolume"] > 0


def test_a_store_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "evaluations.sqlite"
    EvaluationStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE info SET value = ? WHERE name = 'schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(
        CorruptRunError, match=f"has store schema {SCHEMA_VERSION + 1}, this ecad reads {SCHEMA_VERSION}"
    ):
        EvaluationStore(path)
