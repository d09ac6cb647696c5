"""The caching runtime on a tiny PixArt pipeline: exactness, call counts, replay, resets and errors."""

import pytest
import torch
from tiny_pipelines import tiny_pixart_pipeline

import ecad
from ecad import CacheSchedule, ScheduleError

STEPS = 6
PROMPTS = ["a w1 w2", "w3 w4"]


def generate(pipe, prompts=PROMPTS, steps=STEPS, seed=0, **kwargs):
    return pipe(
        prompts,
        num_inference_steps=steps,
        height=16,
        width=16,
        guidance_scale=4.5,
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
        use_resolution_binning=False,
        max_sequence_length=8,
        **kwargs,
    ).images


@pytest.fixture(scope="module")
def pipe():
    return tiny_pixart_pipeline(num_layers=3)


def random_schedule(pipe, steps=STEPS, density=0.5, seed=0):
    full = ecad.full_schedule(pipe, steps)
    generator = torch.Generator().manual_seed(seed)
    return full.like(torch.rand(full.shape, generator=generator) < density)


def test_all_recompute_is_bit_exact_and_disable_restores(pipe):
    reference = generate(pipe)
    with ecad.enable_cache(pipe, ecad.full_schedule(pipe, STEPS)) as handle:
        cached = generate(pipe)
        assert handle.counts == {"computed": STEPS * 3 * 3, "reused": 0, "forecast": 0}
    assert torch.equal(cached, reference)
    assert torch.equal(generate(pipe), reference)
    assert ecad.active_cache(pipe) is None
    for module in pipe.transformer.modules():
        assert not hasattr(module, "_diffusers_hook")
        assert "forward" not in module.__dict__


def test_each_component_runs_exactly_when_its_bit_says(pipe):
    schedule = random_schedule(pipe)
    bits = schedule.effective()
    calls: dict[tuple[int, int], list[int]] = {}
    step = {"value": -1}
    hooks = [pipe.transformer.register_forward_pre_hook(lambda *_: step.__setitem__("value", step["value"] + 1))]
    for b, block in enumerate(pipe.transformer.transformer_blocks):
        for c, name in enumerate(("attn1", "attn2", "ff")):
            inner = getattr(block, name)
            # a leaf inside the component runs only when the component really computes
            leaf = inner.to_q if name != "ff" else inner.net[2]
            hooks.append(
                leaf.register_forward_hook(lambda *_, key=(b, c): calls.setdefault(key, []).append(step["value"]))
            )
    try:
        with ecad.enable_cache(pipe, schedule) as handle:
            generate(pipe)
    finally:
        for h in hooks:
            h.remove()
    assert 0 < handle.counts["reused"] < STEPS * 9
    for b in range(3):
        for c in range(3):
            expected = [s for s in range(STEPS) if bits[s, b, c]]
            assert calls.get((b, c), []) == expected, (b, c)


def test_reused_outputs_are_replayed_bit_exactly(pipe):
    """With ``prune=False`` every block runs its own forward, so a forward hook on each component sees what the
    block receives at every step, computed or replayed (``prune=True`` gives the same images: test_dead_work...)."""
    schedule = random_schedule(pipe, seed=3)
    bits = schedule.effective()
    seen: dict[tuple[int, int], list[torch.Tensor]] = {}
    hooks = []
    for b, block in enumerate(pipe.transformer.transformer_blocks):
        for c, name in enumerate(("attn1", "attn2", "ff")):
            hooks.append(
                getattr(block, name).register_forward_hook(
                    lambda _m, _i, out, key=(b, c): seen.setdefault(key, []).append(out.clone())
                )
            )
    with ecad.enable_cache(pipe, schedule, prune=False):
        generate(pipe)
    for h in hooks:
        h.remove()
    for (b, c), outputs in seen.items():
        assert len(outputs) == STEPS
        last = None
        for s in range(STEPS):
            if bits[s, b, c]:
                last = outputs[s]
            else:
                assert torch.equal(outputs[s], last), (s, b, c)


def test_mixed_schedule_changes_output_and_generations_repeat(pipe):
    reference = generate(pipe)
    with ecad.enable_cache(pipe, random_schedule(pipe, density=0.3)):
        first = generate(pipe)
        second = generate(pipe)
        # a batch of another size between calls starts a new generation cleanly
        single = generate(pipe, prompts=PROMPTS[:1])
        third = generate(pipe)
    assert not torch.equal(first, reference)
    assert torch.equal(first, second)
    assert torch.equal(first, third)
    assert single.shape[0] == 1


def test_batch_size_change_matches_fresh_run(pipe):
    schedule = random_schedule(pipe, density=0.4, seed=5)
    with ecad.enable_cache(pipe, schedule):
        generate(pipe)
        after_big = generate(pipe, prompts=PROMPTS[:1])
    with ecad.enable_cache(pipe, schedule):
        fresh = generate(pipe, prompts=PROMPTS[:1])
    assert torch.equal(after_big, fresh)


def test_step_count_mismatch_is_a_clear_error_and_resample_fixes_it(pipe):
    schedule = random_schedule(pipe, steps=STEPS)
    with ecad.enable_cache(pipe, schedule):
        with pytest.raises(ScheduleError, match=r"runs 8 denoising steps but the schedule has 6.*resample"):
            generate(pipe, steps=8)
    with ecad.enable_cache(pipe, schedule, resample=True) as handle:
        generate(pipe, steps=8)
        assert handle.state.active.num_steps == 8
    with ecad.enable_cache(pipe, schedule.resample(8)):
        explicit = generate(pipe, steps=8)
    with ecad.enable_cache(pipe, schedule, resample=True):
        implicit = generate(pipe, steps=8)
    assert torch.equal(explicit, implicit)


def test_transformer_only_detects_too_many_steps(pipe):
    schedule = random_schedule(pipe, steps=4)
    with ecad.enable_cache(pipe.transformer, schedule):
        with pytest.raises(ScheduleError, match="more denoising steps than the schedule's 4"):
            generate(pipe, steps=STEPS)


def test_transformer_only_matches_pipeline_mode(pipe):
    schedule = random_schedule(pipe, seed=7)
    with ecad.enable_cache(pipe, schedule):
        via_pipe = generate(pipe)
    with ecad.enable_cache(pipe.transformer, schedule):
        via_transformer = generate(pipe)
    assert torch.equal(via_pipe, via_transformer)


def test_wrong_layout_errors_name_both_sides(pipe):
    with pytest.raises(ScheduleError, match=r"schedule has 28 blocks \(0\.\.27\) but PixArtTransformer2DModel has 3"):
        ecad.enable_cache(pipe, CacheSchedule.from_array(torch.ones(STEPS, 28, 3)))
    wrong_components = CacheSchedule.from_array(torch.ones(STEPS, 3, 2), component_names=("attn1", "ff"))
    with pytest.raises(ScheduleError, match=r"components \['attn1', 'ff'\] do not match"):
        ecad.enable_cache(pipe, wrong_components)
    with pytest.raises(TypeError, match="pass a pipeline with a `transformer`"):
        ecad.enable_cache(object(), random_schedule(pipe))
    with pytest.raises(ecad.UnsupportedModelError, match="no adapter for Linear"):
        ecad.enable_cache(torch.nn.Linear(2, 2), random_schedule(pipe))


def test_set_schedule_swaps_without_reinstalling(pipe):
    a, b = random_schedule(pipe, seed=11), random_schedule(pipe, seed=12)
    with ecad.enable_cache(pipe, b):
        expected_b = generate(pipe)
    with ecad.enable_cache(pipe, a) as handle:
        generate(pipe)
        handle.set_schedule(b)
        assert torch.equal(generate(pipe), expected_b)


def test_enable_twice_replaces_the_schedule(pipe):
    reference = generate(pipe)
    ecad.enable_cache(pipe, random_schedule(pipe, density=0.2))
    ecad.enable_cache(pipe, ecad.full_schedule(pipe, STEPS))
    try:
        assert torch.equal(generate(pipe), reference)
    finally:
        ecad.disable_cache(pipe)


def test_cache_memory_matches_the_formula_and_half_precision_halves_it(pipe):
    schedule = random_schedule(pipe, seed=21)
    with ecad.enable_cache(pipe, schedule) as handle:
        full_precision = generate(pipe)
        held = handle.cache_bytes()
    # the formula: one [batch, tokens, hidden] output per existing component (one pass per step with batched CFG)
    batch, hidden = 2 * len(PROMPTS), pipe.transformer.inner_dim
    tokens = (16 // pipe.vae_scale_factor // pipe.transformer.config.patch_size) ** 2
    assert held == 3 * 3 * batch * tokens * hidden * 4
    with ecad.enable_cache(pipe, schedule, cache_dtype=torch.float16) as handle:
        half = generate(pipe)
        assert handle.cache_bytes() == held // 2
    assert half.dtype == full_precision.dtype
    assert (half - full_precision).abs().max() < 1e-2
    plain = generate(pipe)
    with ecad.enable_cache(pipe, ecad.full_schedule(pipe, STEPS), cache_dtype=torch.float16):
        assert torch.equal(generate(pipe), plain)  # nothing replayed, nothing rounded


def test_dead_work_skipping_is_bit_exact_and_leaves_only_gates_in_replayed_blocks(pipe):
    """PixArt's skip forward: where a block replays every component, no norm runs in it (only the modulation table,
    the gates on the replayed outputs and the residual adds); images equal ``prune=False`` bit for bit."""
    norms = [
        (b, getattr(block, name))
        for b, block in enumerate(pipe.transformer.transformer_blocks)
        for name in ("norm1", "norm2")
    ]
    step = {"value": -1}
    seen: list[tuple[int, int]] = []
    handles = [pipe.transformer.register_forward_pre_hook(lambda *_: step.__setitem__("value", step["value"] + 1))]
    handles += [norm.register_forward_hook(lambda *_, b=b: seen.append((step["value"], b))) for b, norm in norms]
    full = ecad.full_schedule(pipe, STEPS)
    bits = full.recompute.clone()
    bits[2] = False  # step 2: every component of every block replays
    bits[3, :, 0] = False  # step 3: attn1 replays, attn2 and ff run
    schedule = full.like(bits)
    try:
        with ecad.enable_cache(pipe, schedule, prune=False):
            reference = generate(pipe)
        seen.clear()
        step["value"] = -1
        with ecad.enable_cache(pipe, schedule):
            skipped = generate(pipe)
    finally:
        for h in handles:
            h.remove()
    assert torch.equal(skipped, reference)
    per_step = [sum(1 for s, _ in seen if s == k) for k in range(STEPS)]
    blocks = len(pipe.transformer.transformer_blocks)
    assert per_step == [2 * blocks, 2 * blocks, 0, blocks, 2 * blocks, 2 * blocks]  # step 3: norm2 only


def test_a_recomputing_component_holds_no_old_output_while_it_runs(pipe):
    """A component that recomputes lets go of its kept output before it runs (the allocator can reuse the memory for
    the new one), and keeps the new one after: with and without a skip forward (``prune=False``: component hooks)."""
    plain = generate(pipe)
    inside = pipe.transformer.transformer_blocks[0].attn1.to_q  # runs only while attn1 itself computes
    for prune in (True, False):
        with ecad.enable_cache(pipe, ecad.heuristics.fora(ecad.model_layout(pipe), STEPS, 2), prune=prune) as handle:
            slots = handle.state.outputs.passes[0][0]
            held = []
            watch = inside.register_forward_pre_hook(lambda *_, held=held, slots=slots: held.append(slots[0]))
            try:
                images = generate(pipe)
            finally:
                watch.remove()
            assert len(held) == STEPS // 2  # steps 0, 2, 4 compute
            assert all(entry is None for entry in held), prune
            assert isinstance(slots[0], torch.Tensor)  # the last computed output is kept for the replay after it
        assert (images - plain).abs().max() > 0  # the schedule replays
