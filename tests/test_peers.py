"""Other libraries' caches as baselines (ecad.peers): each is applied through its library, changes what runs,
leaves the pipeline exactly as it found it, and has its executed compute counted like ecad's schedules."""

import json

import pytest
import torch
from tiny_pipelines import tiny_pixart_pipeline

import ecad
from ecad.cost.counting import count_pipeline_macs
from ecad.evaluation import EvalConfig, ImageStore, evaluate
from ecad.evaluation.executed import ExecutionCounter
from ecad.peers import PEERS, PeerError, PipelineState, parse_peer, resolve_baseline
from ecad.schedule import heuristics

STEPS = 12  # more than cache-dit's 8 warm-up steps
PROMPTS = ["a w1 w2", "w3 w4"]
CALL = dict(
    prompt=PROMPTS,
    num_inference_steps=STEPS,
    height=16,
    width=16,
    guidance_scale=4.5,
    use_resolution_binning=False,
    max_sequence_length=8,
)

# One aggressive setting per family, so that each visibly skips work on a random-weight model.
AGGRESSIVE = {
    "fbcache": "fbcache:1000",
    "pab": "pab:2,4",
    "fastercache": "fastercache:2,2",
    "taylorseer-diffusers": "taylorseer-diffusers:2",
    "magcache": "magcache:1000",
    "dbcache": "dbcache:1,0,1000",
    "dbcache-taylorseer": "dbcache-taylorseer:1,0,1000",
}


def observed_cost(pipe):
    """The cost table of the tests' own pipeline call (ecad eval prices with the call it observes)."""
    return count_pipeline_macs(
        pipe,
        16,
        16,
        guidance_scale=CALL["guidance_scale"],
        images=1,
        use_resolution_binning=False,
        max_sequence_length=8,
    )


def generate(pipe):
    generators = [torch.Generator().manual_seed(i) for i in range(len(PROMPTS))]
    with torch.inference_mode():
        return pipe(**CALL, generator=generators, output_type="pt").images


@pytest.fixture(scope="module")
def pipe():
    return tiny_pixart_pipeline(num_layers=3)


def needs_library(family):
    if PEERS[family].library == "cache-dit":
        pytest.importorskip("cache_dit", reason="cache-dit is not installed (pip install 'ecad[peers]')")


def test_every_family_has_a_setting_here():
    assert set(AGGRESSIVE) == set(PEERS)


@pytest.mark.parametrize("family", sorted(AGGRESSIVE))
def test_peer_skips_work_repeats_exactly_and_restores_the_pipeline(pipe, family):
    needs_library(family)
    (peer,) = parse_peer(AGGRESSIVE[family])
    reference = generate(pipe)
    state = PipelineState(pipe)
    table = observed_cost(pipe)
    with ExecutionCounter(pipe, STEPS) as counter:
        with peer.apply(pipe, CALL):
            counter.start()
            first = generate(pipe)
            executed = counter.result(len(PROMPTS))
            second = generate(pipe)  # the method's state is reset per generation: the same images again
    assert torch.equal(first, second)
    assert executed.macs(table) < table.schedule_macs(table.full_schedule(STEPS))  # it really skipped work
    assert not torch.equal(first, reference)
    assert state.leftovers() == []
    for module in pipe.transformer.modules():
        assert not hasattr(module, "_diffusers_hook") and "forward" not in vars(module)
    assert torch.equal(generate(pipe), reference)


@pytest.mark.parametrize("family", ["dbcache", "dbcache-taylorseer"])
def test_dbcache_runs_on_a_pipeline_subclass_cache_dit_does_not_know_by_name(pipe, family):
    """cache-dit picks adapters by class name; a renamed PixArtAlphaPipeline subclass (as tiny-shapes' pipeline is)
    gets cache-dit's PixArt adapter on the real pipeline: same images as the original class, pipeline restored."""
    needs_library(family)
    renamed = type("RenamedPipeline", (type(pipe),), {})(**pipe.components)
    (peer,) = parse_peer(AGGRESSIVE[family])
    with peer.apply(pipe, CALL):
        expected = generate(pipe)
    state = PipelineState(renamed)
    with ExecutionCounter(renamed, STEPS) as counter, peer.apply(renamed, CALL):
        counter.start()
        got = generate(renamed)
    assert torch.equal(got, expected)
    assert int(counter.components.sum()) < int(counter.outside.sum()) * int(ecad.model_layout(pipe).exists.sum())
    assert state.leftovers() == []


def test_pipeline_state_takes_away_what_a_method_leaves(pipe):
    """Plumbing, with an injected leaky "method": hooks, instance attributes and a patched class __call__."""
    from diffusers.hooks import HookRegistry, ModelHook

    reference = generate(pipe)
    state = PipelineState(pipe)
    block = pipe.transformer.transformer_blocks[0]
    HookRegistry.check_if_exists_or_initialize(block).register_hook(ModelHook(), "leaky")
    pipe.transformer.forward = pipe.transformer.forward
    cls = type(pipe)
    original_call = cls.__call__
    cls.__call__ = lambda self, *a, **k: original_call(self, *a, **k)
    cls._is_cached = True
    children = list(pipe.transformer._modules)
    pipe.transformer._modules["transformer_blocks"] = pipe.transformer._modules.pop("transformer_blocks")  # mock.patch
    assert {
        "BasicTransformerBlock._diffusers_hook",
        "BasicTransformerBlock diffusers hook leaky",
        "PixArtTransformer2DModel.forward",
        f"{cls.__name__}._is_cached",
        f"{cls.__name__}.__call__ replaced",
        "PixArtTransformer2DModel children reordered",
    } <= set(state.leftovers())
    state.restore()
    assert state.leftovers() == [] and cls.__call__ is original_call
    assert list(pipe.transformer._modules) == children
    assert torch.equal(generate(pipe), reference)


@pytest.mark.parametrize("name", ["fora:2", "random"])
def test_counted_compute_of_a_schedule_is_the_cost_model_exactly(pipe, name):
    layout = ecad.model_layout(pipe)
    schedule = (
        heuristics.fora(layout, STEPS, 2)
        if name == "fora:2"
        else heuristics.random_schedule(layout, STEPS, 0.4, seed=3)
    )
    table = observed_cost(pipe)
    with ExecutionCounter(pipe, STEPS) as counter:
        generate(pipe)
        full = counter.result(len(PROMPTS))
        counter.start()
        with ecad.enable_cache(pipe, schedule):
            generate(pipe)
        executed = counter.result(len(PROMPTS))
    assert full.macs(table) == table.schedule_macs(table.full_schedule(STEPS))
    assert executed.macs(table) == table.schedule_macs(schedule)
    assert torch.equal(executed.components, schedule.effective().long() * 2 * len(PROMPTS))
    assert executed.recompute_fraction(layout.exists) == schedule.stats()["recompute_fraction"]


def test_fastercache_is_counted_at_the_batch_it_really_runs(pipe):
    (peer,) = parse_peer("fastercache:2,2")
    with ExecutionCounter(pipe, STEPS) as counter, peer.apply(pipe, CALL):
        generate(pipe)
    outside = counter.outside.tolist()
    assert outside[0] == 2 * len(PROMPTS)  # conditional and unconditional halves
    assert len(PROMPTS) in outside  # steps where only the conditional half ran


def test_magcache_calibrates_once_per_model_and_settings(pipe, monkeypatch):
    (peer,) = parse_peer("magcache:0.1")
    calls, bars = [], []
    original, bar = type(pipe).__call__, type(pipe).progress_bar
    monkeypatch.setattr(type(pipe), "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    monkeypatch.setattr(
        type(pipe),
        "progress_bar",
        lambda self, *a, **k: bars.append(dict(self._progress_bar_config)) or bar(self, *a, **k),
    )
    before = dict(pipe._progress_bar_config)
    for _ in range(2):
        with peer.apply(pipe, CALL):
            pass
    assert len(calls) == 1  # the calibration run, not repeated
    assert bars == [{**before, "desc": "magcache:0.1 calibration", "leave": False}]  # its bar says what it is
    assert pipe._progress_bar_config == before
    ratios = peer.settings()["mag_ratios"]
    assert len(ratios) == STEPS and ratios[0] == 1.0 and all(r > 0 for r in ratios)


def test_specs_sweeps_and_errors():
    assert [p.spec for p in parse_peer("fbcache")] == [f"fbcache:{t}" for t in PEERS["fbcache"].sweep]
    assert all(len(PEERS[f].sweep) in (3, 4) for f in PEERS)
    (one,) = parse_peer("dbcache:1,0,0.08")
    assert one.name == "dbcache-1-0-0.08" and one.cache_config()["Fn_compute_blocks"] == 1
    layout = ecad.model_layout(tiny_pixart_pipeline(num_layers=3))
    assert resolve_baseline(layout, 6, "fora:3")[0].metadata["name"] == "fora-3"
    with pytest.raises(ValueError, match=r"dbcache takes 3 to 4 settings \(dbcache:Fn,Bn,THRESHOLD\[,WARMUP\]\)"):
        parse_peer("dbcache:0.1")
    with pytest.raises(ValueError, match="settings must be numbers"):
        parse_peer("fbcache:high")
    with pytest.raises(ValueError, match="unknown baseline 'toca'.*fbcache"):
        resolve_baseline(layout, 6, "toca")


def test_eval_runs_peers_like_schedules_and_resumes(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("cache_dit", reason="cache-dit is not installed (pip install 'ecad[peers]')")
    out = tmp_path / "eval"
    config = EvalConfig(
        model=str(tiny_model_dir),
        prompts=PROMPTS,
        baselines=["fora:2", "fbcache:1000", "dbcache:1,0,1000,2"],
        metrics=["fidelity"],
        num_steps=6,
        height=16,
        width=16,
        batch_size=2,
        warmup=0,
        repeats=1,
        device="cpu",
    )
    assert evaluate(config, out, progress=False, max_new=2) is None  # a long evaluation, in pieces
    assert list(ImageStore(out).read()["schedules"]) == ["no-cache", "fora-2"]
    report = evaluate(config, out, progress=False)
    rows = {r["name"]: r for r in report["results"]}
    assert list(rows) == ["no-cache", "fora-2", "fbcache-1000", "dbcache-1-0-1000-2"]
    assert [r["family"] for r in rows.values()] == ["no-cache", "fora", "fbcache", "dbcache"]
    assert rows["fbcache-1000"]["key"].startswith("peer:fbcache:1000:diffusers-")
    for row in rows.values():
        assert row["latency"]["repeats"] == 1 and row["speedup"] > 0
    assert rows["fbcache-1000"]["macs_speedup"] > 1.5 and rows["dbcache-1-0-1000-2"]["macs_speedup"] > 1.2
    record = json.loads((out / "schedules" / "fbcache-1000.json").read_text())
    assert record["format"] == "ecad.peer/1" and record["settings"] == {"threshold": 1000.0}

    saved = []
    original = ImageStore.save
    monkeypatch.setattr(ImageStore, "save", lambda self, name, *a: saved.append(name) or original(self, name, *a))
    again = evaluate(config, out, progress=False)
    assert saved == [] and [r["macs"] for r in again["results"]] == [r["macs"] for r in report["results"]]


# What each library supports beyond PixArt (diffusers 0.42.1, cache-dit 1.5.3), as the README states it.
UNSUPPORTED = {
    "flux": {"fastercache"},  # guidance-distilled: no CFG batch to split
    "sd3": {"fbcache", "fastercache", "dbcache-taylorseer"},  # context-pre-only last block; pooled projections
}


@pytest.fixture(scope="module", params=sorted(UNSUPPORTED))
def other_family(request):
    from tiny_pipelines import tiny_flux_pipeline, tiny_sd3_pipeline

    pipe = tiny_flux_pipeline() if request.param == "flux" else tiny_sd3_pipeline()
    call = dict(
        prompt=["w1 w2", "w3"],
        num_inference_steps=STEPS,
        height=16,
        width=16,
        max_sequence_length=8,
        guidance_scale=3.5 if request.param == "flux" else 4.5,
    )
    return request.param, pipe, call


@pytest.mark.parametrize("family", sorted(AGGRESSIVE))
def test_other_model_families_run_each_method_or_refuse_it_cleanly(other_family, family):
    needs_library(family)
    name, pipe, call = other_family

    def images():
        with torch.inference_mode():
            return pipe(**call, generator=[torch.Generator().manual_seed(i) for i in range(2)], output_type="pt").images

    reference = images()
    state = PipelineState(pipe)
    (peer,) = parse_peer(AGGRESSIVE[family])
    if family in UNSUPPORTED[name]:
        with pytest.raises(PeerError, match=f"{family}.*failed on {type(pipe.transformer).__name__}"):
            with peer.apply(pipe, call):
                images()
    else:
        with peer.apply(pipe, call):
            first, second = images(), images()
        assert torch.equal(first, second) and not torch.equal(first, reference)
    assert state.leftovers() == []
    assert torch.equal(images(), reference)
