"""Dead-work pruning graded independently: ``prune_dead`` against a brute-force oracle written from the definition
(:mod:`dead_work`), and ``prune=True`` against ``prune=False`` with ``torch.equal`` on many random and paper-derived
schedules for every adapter case of tests/test_adapters.py."""

import pytest
import torch
from dead_work import live_bits
from test_adapters import BUILDERS, STEPS

import ecad
from ecad import CacheSchedule
from ecad.schedule.pruning import prune_dead

DENSITIES = (0.15, 0.3, 0.45, 0.6, 0.75, 0.9)


def test_prune_dead_matches_the_definition_on_random_bits():
    generator = torch.Generator().manual_seed(0)
    feeds = tuple((b, s, 3) for b in range(3) for s in (0, 2))  # two sources feed component 3; component 1 is free
    dead = 0
    for trial in range(150):
        bits = torch.rand(8, 3, 4, generator=generator) < DENSITIES[trial % len(DENSITIES)]
        bits[0] = True
        expected = live_bits(bits, feeds)
        assert torch.equal(prune_dead(bits, feeds), expected), trial
        dead += int((bits & ~expected).sum())
    assert dead > 50


def test_prune_dead_matches_the_definition_on_the_paper_flux_files(paper_schedules):
    files = sorted(paper_schedules.glob("flux*/*.json"))
    assert len(files) == 4
    adapter = ecad.adapters.find_preset("flux-dev")[0]
    for path in files:
        schedule = CacheSchedule.load(path)
        names = schedule.component_names
        feeds = tuple(
            (b, names.index(source), names.index(consumer))
            for b, block in enumerate(schedule.block_names)
            for source, consumer in adapter.group_of(block).feeds
        )
        assert len(feeds) == 2 * 38
        bits = schedule.effective()
        expected = live_bits(bits, feeds)
        assert torch.equal(prune_dead(bits, feeds), expected), path
        assert (bits & ~expected).any(), path  # every file has some dead recompute


@pytest.fixture(scope="module", params=list(BUILDERS))
def case(request):
    return BUILDERS[request.param]()


def assert_pruning_changes_nothing(case, schedules):
    """Images bit-identical with and without pruning; the runtime skips exactly the oracle's dead recomputes."""
    feeds = case.layout().feeds
    skipped_total = 0
    for schedule in schedules:
        with case.enable(schedule, prune=False) as handle:
            unpruned = case.run()
            computed_unpruned = handle.counts["computed"]
        with case.enable(schedule, prune=True) as handle:
            pruned = case.run()
            computed_pruned = handle.counts["computed"]
        assert torch.equal(pruned, unpruned), schedule.metadata
        bits = schedule.effective()
        dead = int((bits & ~live_bits(bits, feeds)).sum())
        assert computed_unpruned - computed_pruned == dead * case.passes, schedule.metadata
        skipped_total += dead
    return skipped_total


def test_pruning_is_bit_identical_on_random_schedules(case):
    full = ecad.full_schedule(case.target, STEPS, adapter=case.adapter)
    schedules = [
        full.like(
            torch.rand(full.shape, generator=torch.Generator().manual_seed(100 + i)) < density, name=f"random-{density}"
        )
        for i, density in enumerate(DENSITIES)
    ]
    skipped = assert_pruning_changes_nothing(case, schedules)
    assert (skipped > 0) == bool(case.layout().feeds)  # FLUX: the schedules do exercise pruning


def paper_derived(layout_schedule: CacheSchedule, paper: CacheSchedule) -> CacheSchedule:
    """A paper schedule's bit patterns on a tiny layout: its step count resampled, blocks and components taken by
    name (a component the paper's model lacks takes the paper's component at the same index)."""
    source = paper.resample(layout_schedule.num_steps).recompute
    bits = torch.zeros(layout_schedule.shape, dtype=torch.bool)
    for b, block in enumerate(layout_schedule.block_names):
        pb = paper.block_names.index(block) if block in paper.block_names else b
        for c, component in enumerate(layout_schedule.component_names):
            pc = (
                paper.component_names.index(component)
                if component in paper.component_names
                else c % paper.num_components
            )
            bits[:, b, c] = source[:, pb, pc]
    return layout_schedule.like(bits, name=f"{paper.metadata.get('name', 'paper')}-derived")


def test_pruning_is_bit_identical_on_paper_derived_schedules(case, paper_schedules):
    full = ecad.full_schedule(case.target, STEPS, adapter=case.adapter)
    family = "flux" if "ff_context" in full.component_names else "pixart_alpha"
    files = sorted(paper_schedules.glob(f"{family}_256/*.json"))
    assert len(files) >= 2
    assert_pruning_changes_nothing(case, [paper_derived(full, CacheSchedule.load(f)) for f in files])
