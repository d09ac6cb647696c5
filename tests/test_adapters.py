"""The four standard checks for every adapter, plus replay and per-pass caches, on tiny models built from configs.

Cases: PixArt (PixArtAlphaPipeline), FLUX (FluxPipeline), FLUX with true CFG (two transformer passes per step), SD3
(StableDiffusion3Pipeline with a dual-attention first block and a context-pre-only last block), Sana (SanaPipeline:
Gemma2 text encoder, DC-AE, CFG batched into one pass) and Sana through the generic adapter (a bare tiny transformer
driven by a hand-written denoising loop, so ``enable_cache`` also gets a transformer instead of a pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from dead_work import live_bits
from diffusers.models.normalization import RMSNorm
from tiny_pipelines import (
    NEW_FAMILIES,
    tiny_flux_pipeline,
    tiny_pixart_pipeline,
    tiny_sana_pipeline,
    tiny_sana_transformer,
    tiny_sd3_pipeline,
)
from torch.overrides import TorchFunctionMode

import ecad
from ecad import CacheSchedule, GenericAdapter, ScheduleError

STEPS = 4


@dataclass
class Case:
    target: Any  # what enable_cache receives: a pipeline or a bare transformer
    run: Callable[[], torch.Tensor]
    passes: int = 1
    adapter: ecad.adapters.ModelAdapter | None = None

    @property
    def transformer(self) -> torch.nn.Module:
        return getattr(self.target, "transformer", self.target)

    def layout(self):
        return ecad.model_layout(self.target, self.adapter)

    def random_schedule(self, density: float = 0.5, seed: int = 0) -> CacheSchedule:
        full = ecad.full_schedule(self.target, STEPS, adapter=self.adapter)
        return full.like(torch.rand(full.shape, generator=torch.Generator().manual_seed(seed)) < density)

    def enable(self, schedule: CacheSchedule, **kwargs: Any) -> ecad.CacheHandle:
        return ecad.enable_cache(self.target, schedule, adapter=self.adapter, **kwargs)


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def flux_case(true_cfg: bool) -> Case:
    pipe = tiny_flux_pipeline()
    extra = {"negative_prompt": ["w5 w6"], "true_cfg_scale": 2.0} if true_cfg else {}
    prompts = ["w1 w2"] if true_cfg else ["w1 w2", "w3"]

    def run() -> torch.Tensor:
        return pipe(
            prompts,
            num_inference_steps=STEPS,
            height=16,
            width=16,
            guidance_scale=3.5,
            generator=_generator(),
            output_type="pt",
            max_sequence_length=8,
            **extra,
        ).images

    return Case(pipe, run, passes=2 if true_cfg else 1)


def pixart_case() -> Case:
    pipe = tiny_pixart_pipeline()

    def run() -> torch.Tensor:
        return pipe(
            ["w1 w2", "w3"],
            num_inference_steps=STEPS,
            height=16,
            width=16,
            guidance_scale=4.5,
            generator=_generator(),
            output_type="pt",
            max_sequence_length=8,
            use_resolution_binning=False,
            clean_caption=False,
        ).images

    return Case(pipe, run)


def sd3_case() -> Case:
    pipe = tiny_sd3_pipeline()

    def run() -> torch.Tensor:
        return pipe(
            ["w1 w2", "w3"],
            num_inference_steps=STEPS,
            height=16,
            width=16,
            guidance_scale=4.0,
            generator=_generator(),
            output_type="pt",
            max_sequence_length=8,
        ).images

    return Case(pipe, run)


def sana_case() -> Case:
    pipe = tiny_sana_pipeline()

    def run() -> torch.Tensor:
        return pipe(
            ["w1 w2", "w3"],
            num_inference_steps=STEPS,
            height=32,
            width=32,
            guidance_scale=4.5,
            generator=_generator(),
            output_type="pt",
            max_sequence_length=8,
            use_resolution_binning=False,
            complex_human_instruction=None,
        ).images

    return Case(pipe, run)


def sana_generic_case() -> Case:
    torch.manual_seed(0)
    transformer = tiny_sana_transformer()
    latents = torch.randn(2, 4, 8, 8)
    text = torch.randn(2, 5, 32)

    @torch.no_grad()
    def run() -> torch.Tensor:
        x = latents
        for t in torch.linspace(999, 250, STEPS):
            x = x - 0.2 * transformer(x, text, timestep=t.expand(2), return_dict=False)[0]
        return x

    return Case(transformer, run, adapter=GenericAdapter("transformer_blocks", ("attn1", "attn2", "ff")))


def _outputs(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in _outputs(item)]


def bare_case(family: str) -> Case:
    """A tiny transformer of a family without an offline pipeline here, called at 4 falling timesteps with the
    inputs its pipeline passes (fixed latents: the outputs of every step are compared)."""
    build, timestep_arg, timesteps, *_ = NEW_FAMILIES[family]
    torch.manual_seed(0)
    transformer, inputs = build()

    @torch.no_grad()
    def run() -> torch.Tensor:
        outputs = [transformer(**inputs, **{timestep_arg: torch.full((2,), t)}, return_dict=False) for t in timesteps]
        return torch.cat([o.flatten() for o in _outputs(outputs)])

    return Case(transformer, run)


BUILDERS = {
    "pixart": pixart_case,
    "flux": lambda: flux_case(False),
    "flux-true-cfg": lambda: flux_case(True),
    "sd3": sd3_case,
    "sana": sana_case,
    "sana-generic": sana_generic_case,
    **{family: lambda family=family: bare_case(family) for family in NEW_FAMILIES},
}


@pytest.fixture(
    scope="module", params=[pytest.param(name, marks=pytest.mark.slow) if name == "ltx2" else name for name in BUILDERS]
)
def case(request) -> Case:
    return BUILDERS[request.param]()


def _component_of_weight(case: Case) -> dict[int, tuple[int, int]]:
    adapter = ecad.get_adapter(case.transformer, case.adapter)
    return {id(p): (b, c) for b, c, _, module in adapter.components(case.transformer) for p in module.parameters()}


class _WeightUse(TorchFunctionMode):
    """Records which components' weights enter a linear or convolution: a component ran iff one of them did."""

    def __init__(self, owners: dict[int, tuple[int, int]], call: list[int]) -> None:
        super().__init__()
        self.owners, self.call, self.seen = owners, call, set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.nn.functional.linear, torch.nn.functional.conv2d):
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if id(weight) in self.owners:
                self.seen.add((*self.owners[id(weight)], self.call[0]))
        return func(*args, **kwargs)


def test_all_recompute_is_bit_exact(case):
    reference = case.run()
    with case.enable(ecad.full_schedule(case.target, STEPS, adapter=case.adapter)) as handle:
        cached = case.run()
    assert handle.counts["reused"] == 0
    assert handle.counts["computed"] == int(case.layout().exists.sum()) * STEPS * case.passes
    assert torch.equal(cached, reference)


def test_disable_restores_exactly(case):
    reference = case.run()
    with case.enable(case.random_schedule(density=0.3)):
        cached = case.run()
    assert not torch.equal(cached, reference)
    assert torch.equal(case.run(), reference)
    assert ecad.active_cache(case.target) is None
    for module in case.transformer.modules():
        # FluxPipeline's own cache_context keeps an (empty) diffusers registry on the transformer: only ecad's must go
        registry = getattr(module, "_diffusers_hook", None)
        assert registry is None or not any(name.startswith("ecad_") for name in registry.hooks)


def test_each_component_runs_exactly_when_its_bits_say(case):
    schedule = case.random_schedule(seed=1)
    layout = case.layout()
    # what the runtime runs: dead recomputes skipped, by the oracle of tests/dead_work.py (not the pruning under test)
    expected_bits = live_bits(schedule.effective(), layout.feeds)
    call = [-1]
    hook = case.transformer.register_forward_pre_hook(lambda *_: call.__setitem__(0, call[0] + 1))
    mode = _WeightUse(_component_of_weight(case), call)
    try:
        with case.enable(schedule) as handle, mode:
            case.run()
    finally:
        hook.remove()
    assert call[0] + 1 == STEPS * case.passes
    assert 0 < handle.counts["reused"]
    expected = {(b, c, s * case.passes + p) for s, b, c in expected_bits.nonzero().tolist() for p in range(case.passes)}
    assert mode.seen == expected


def test_schedule_for_another_model_is_refused(case):
    others = {"FluxTransformer2DModel": sd3_case, "SD3Transformer2DModel": sana_generic_case}
    other = others.get(type(case.transformer).__name__, lambda: flux_case(False))()
    foreign = ecad.full_schedule(other.target, STEPS, adapter=other.adapter)
    with pytest.raises(ScheduleError, match=type(case.transformer).__name__) as error:
        case.enable(foreign)
    assert "use a schedule made for this" in str(error.value)
    assert ecad.active_cache(case.target) is None


def _as_tuple(output: Any) -> tuple[torch.Tensor, ...]:
    return tuple(output) if isinstance(output, (tuple, list)) else (output,)


def test_reused_outputs_replay_bit_exactly_per_pass(case):
    """With ``prune=False`` every component module is called at every step (computing or replaying), so forward
    hooks see each replayed output; ``prune=True`` gives the same images (test_dead_work_skipping_is_bit_exact)."""
    schedule = case.random_schedule(seed=2)
    bits = schedule.effective()
    adapter = ecad.get_adapter(case.transformer, case.adapter)
    seen: dict[tuple[int, int], list[tuple[torch.Tensor, ...]]] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, key=(b, c): seen.setdefault(key, []).append(tuple(t.clone() for t in _as_tuple(out)))
        )
        for b, c, _, module in adapter.components(case.transformer)
    ]
    try:
        with case.enable(schedule, prune=False):
            case.run()
    finally:
        for h in hooks:
            h.remove()
    for (b, c), outputs in seen.items():
        assert len(outputs) == STEPS * case.passes
        last: dict[int, tuple[torch.Tensor, ...]] = {}
        for call, output in enumerate(outputs):
            step, pass_index = divmod(call, case.passes)
            if bits[step, b, c]:
                last[pass_index] = output
            else:
                assert all(torch.equal(x, y) for x, y in zip(output, last[pass_index], strict=True)), (step, b, c)
        if case.passes == 2:  # conditional and unconditional passes keep their own outputs
            assert not torch.equal(outputs[0][0], outputs[1][0])


def _norm_calls(case: Case) -> tuple[list[int], list[torch.utils.hooks.RemovableHandle]]:
    """Counts calls of every norm inside the blocks (the work a skip forward leaves out for replayed components)."""
    adapter = ecad.get_adapter(case.transformer, case.adapter)
    calls = [0]
    handles = [
        module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        for *_, block, _ in adapter.blocks(case.transformer)
        for module in block.modules()
        if isinstance(module, (torch.nn.LayerNorm, torch.nn.RMSNorm, RMSNorm))
    ]
    return calls, handles


def _every_plan(case: Case) -> list[CacheSchedule]:
    """Schedules in which every block meets every plan (which of its components run) at some step after step 0."""
    full = ecad.full_schedule(case.target, STEPS, adapter=case.adapter)
    plans = 2**full.num_components
    per_run = STEPS - 1
    schedules = []
    for run in range(-(-plans // per_run)):
        bits = full.recompute.clone()
        for step in range(1, STEPS):
            for block in range(full.num_blocks):
                plan = (run * per_run + step - 1 + block) % plans
                bits[step, block] = torch.tensor([bool(plan >> c & 1) for c in range(full.num_components)])
        schedules.append(full.like(bits))
    return schedules


def test_dead_work_skipping_is_bit_exact(case):
    """``prune=True`` (default: the adapter's skip forwards leave out the inputs of replayed components) against
    ``prune=False`` (every block runs its own forward, as before skipping existed): the same bits for every plan of
    every block kind, and less work."""
    calls, handles = _norm_calls(case)
    norms = {True: 0, False: 0}
    try:
        for schedule in _every_plan(case):
            outputs = {}
            for prune in (False, True):
                calls[0] = 0
                with case.enable(schedule, prune=prune):
                    outputs[prune] = case.run()
                norms[prune] += calls[0]
            assert torch.equal(outputs[True], outputs[False])
    finally:
        for h in handles:
            h.remove()
    adapter = ecad.get_adapter(case.transformer, case.adapter)
    if adapter.block_skips(case.transformer):
        assert norms[True] < norms[False]
    else:  # no skip forward (the generic and automatic adapters): every block runs its own forward
        assert norms[True] == norms[False]
