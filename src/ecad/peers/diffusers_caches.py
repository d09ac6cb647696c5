"""diffusers' own caches (``diffusers.hooks``) as ecad baselines: First Block Cache, Pyramid Attention Broadcast,
FasterCache, TaylorSeer and MagCache, each applied with its ``apply_*`` function and ``*Config``.

These hooks expect two things from the pipeline that only pipelines of ``CacheMixin`` models (FLUX) provide: a
cache context around every transformer call, and a reset of the hooks' state after every generation
(``maybe_free_model_hooks``). PixArt and SD3 do neither, so :class:`DenoisingContextHook` does both for them, in
this one place, for every method: it watches the timestep of each transformer call
(:class:`ecad.runtime.steps.StepClock`), resets every stateful hook when a new generation starts, and enters the cache
context. On every model it gives PAB and FasterCache the current timestep they ask for, on the usual 0..1000 scale.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch
from diffusers.hooks import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    HookRegistry,
    MagCacheConfig,
    ModelHook,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
    apply_faster_cache,
    apply_first_block_cache,
    apply_mag_cache,
    apply_pyramid_attention_broadcast,
    apply_taylorseer_cache,
)
from diffusers.models.cache_utils import CacheMixin
from torch import nn

from ..adapters import get_adapter
from ..models.loading import progress_bar_set
from ..runtime.steps import StepClock, call_argument, scalar
from .base import Peer, restored

_CONTEXT_HOOK = "ecad_peer_context"
_CONTEXT_NAME = "cond"  # what CacheMixin pipelines name the (batched) conditional call


class DenoisingContextHook(ModelHook):
    """Outermost on the transformer: follows the timestep; on models without ``CacheMixin`` it also does what their
    pipelines do not: reset every stateful hook when a new generation starts, and enter the cache context."""

    def __init__(self, timestep_arg: str, timestep_scale: float, manage_state: bool) -> None:
        super().__init__()
        self.timestep_arg = timestep_arg
        self.scale = 1000.0 / timestep_scale
        self.manage_state = manage_state
        self.clock = StepClock()

    def current_timestep(self) -> float:
        """The timestep of the call in progress on the 0..1000 scale of the hooks' timestep ranges."""
        return (self.clock.timestep or 0.0) * self.scale

    @torch.compiler.disable(recursive=False)
    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        new_generation = self.clock.tick(scalar(call_argument(module, self.timestep_arg, args, kwargs)))
        if not self.manage_state:  # the pipeline opens the context and resets the hooks after each call
            return self.fn_ref.original_forward(*args, **kwargs)
        if new_generation:
            HookRegistry.check_if_exists_or_initialize(module).reset_stateful_hooks(recurse=True)
        # CacheMixin.cache_context only sets the context on the hooks' state managers, which any module can use.
        with CacheMixin.cache_context(module, _CONTEXT_NAME):
            return self.fn_ref.original_forward(*args, **kwargs)


@contextlib.contextmanager
def diffusers_cache(
    pipe: Any, make_config: Callable[[DenoisingContextHook], Any], apply: Callable[[nn.Module, Any], None]
) -> Iterator[None]:
    """Apply one ``diffusers.hooks`` method to the pipeline's transformer for the ``with`` block.

    ``make_config`` builds the method's config (it may read the context hook's current timestep); hooks are
    removed on exit by :class:`~ecad.peers.base.PipelineState`, which knows which ones were added.
    """
    transformer = pipe.transformer
    adapter = get_adapter(transformer)
    context = DenoisingContextHook(
        adapter.timestep_arg, adapter.timestep_scale, manage_state=not isinstance(transformer, CacheMixin)
    )
    apply(transformer, make_config(context))
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.register_hook(context, _CONTEXT_HOOK)  # registered last: runs first
    registry.invalidate_child_registries_cache()
    yield


class DiffusersPeer(Peer):
    """A method of ``diffusers.hooks``."""

    library = "diffusers"
    install = "pip install diffusers"


def _components_pattern(transformer: nn.Module) -> str:
    """A regular expression matching exactly the module paths of ecad's (block, component) modules."""
    paths = [path for *_, path, _ in get_adapter(transformer).components(transformer)]
    return "|".join(re.escape(p) for p in paths)


class FirstBlockCache(DiffusersPeer):
    """``fbcache:THRESHOLD``: skip all blocks after the first while the first block's residual changes less than
    THRESHOLD (relative mean absolute difference) from the step before."""

    family = "fbcache"
    usage = "fbcache:THRESHOLD"
    arity = (1, 1)
    sweep = ("0.1", "0.2", "0.3", "0.5")

    def settings(self) -> dict[str, Any]:
        return {"threshold": self.args[0]}

    def _applied(self, pipe: Any, call: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        return diffusers_cache(pipe, lambda _: FirstBlockCacheConfig(threshold=self.args[0]), apply_first_block_cache)


class PyramidAttentionBroadcast(DiffusersPeer):
    """``pab:SELF[,CROSS]``: reuse self-attention outputs for SELF-1 of every SELF calls and cross-attention
    outputs for CROSS-1 of every CROSS calls (default 2 x SELF), inside diffusers' default timestep range
    (100, 800)."""

    family = "pab"
    usage = "pab:SELF[,CROSS]"
    arity = (1, 2)
    sweep = ("2,4", "3,6", "6,12")

    def settings(self) -> dict[str, Any]:
        spatial = int(self.args[0])
        cross = int(self.args[1]) if len(self.args) > 1 else 2 * spatial
        return {"spatial_attention_block_skip_range": spatial, "cross_attention_block_skip_range": cross}

    def _applied(self, pipe: Any, call: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        return diffusers_cache(
            pipe,
            lambda context: PyramidAttentionBroadcastConfig(
                **self.settings(), current_timestep_callback=context.current_timestep
            ),
            apply_pyramid_attention_broadcast,
        )


class FasterCache(DiffusersPeer):
    """``fastercache:ATTENTION[,UNCOND]``: compute the unconditional (CFG) half of the batch only every UNCOND-th
    step below timestep 641 (default 5) and approximate it from the conditional half in between; on those steps
    self-attention is extrapolated from its last two outputs except every ATTENTION-th step (diffusers' defaults
    otherwise, images: ``tensor_format="BCHW"``)."""

    family = "fastercache"
    usage = "fastercache:ATTENTION[,UNCOND]"
    arity = (1, 2)
    sweep = ("2,2", "2,3", "2,5", "4,10")

    def settings(self) -> dict[str, Any]:
        uncond = int(self.args[1]) if len(self.args) > 1 else 5
        return {
            "spatial_attention_block_skip_range": int(self.args[0]),
            "unconditional_batch_skip_range": uncond,
            "tensor_format": "BCHW",
        }

    def _applied(self, pipe: Any, call: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        return diffusers_cache(
            pipe,
            lambda context: FasterCacheConfig(**self.settings(), current_timestep_callback=context.current_timestep),
            apply_faster_cache,
        )


class TaylorSeer(DiffusersPeer):
    """``taylorseer-diffusers:INTERVAL[,ORDER[,WARMUP]]``: after WARMUP full steps (default 3), compute every
    INTERVAL-th step and forecast every component's output in between with a Taylor series of order ORDER (default
    1) from its last computed outputs. The components are ecad's (PixArt: ``attn1``, ``attn2``, ``ff`` of every
    block); the Taylor factors are kept in the model's dtype, not diffusers' default bfloat16."""

    family = "taylorseer-diffusers"
    usage = "taylorseer-diffusers:INTERVAL[,ORDER[,WARMUP]]"
    arity = (1, 3)
    sweep = ("2", "3", "4")

    def settings(self) -> dict[str, Any]:
        order = int(self.args[1]) if len(self.args) > 1 else 1
        warmup = int(self.args[2]) if len(self.args) > 2 else 3
        return {"cache_interval": int(self.args[0]), "max_order": order, "disable_cache_before_step": warmup}

    def _applied(self, pipe: Any, call: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        transformer = pipe.transformer
        return diffusers_cache(
            pipe,
            lambda _: TaylorSeerCacheConfig(
                **self.settings(),
                taylor_factors_dtype=transformer.dtype,
                cache_identifiers=[_components_pattern(transformer)],
            ),
            apply_taylorseer_cache,
        )


class MagCache(DiffusersPeer):
    """``magcache:THRESHOLD[,K]``: skip whole transformer calls (reusing the last residual) while the error
    accumulated from the model's magnitude ratios stays below THRESHOLD, at most K (default 3) steps in a row, never
    in the first 20% of the steps. The ratios come from MagCache's own calibration run (``calibrate=True``): one
    generation of the call's first prompt, once per model and call settings."""

    family = "magcache"
    usage = "magcache:THRESHOLD[,K]"
    arity = (1, 2)
    sweep = ("0.06", "0.12", "0.24", "0.5")

    def settings(self) -> dict[str, Any]:
        return {
            "threshold": self.args[0],
            "max_skip_steps": int(self.args[1]) if len(self.args) > 1 else 3,
            **({"mag_ratios": self.memo["ratios"]} if "ratios" in self.memo else {}),
        }

    def _applied(self, pipe: Any, call: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        steps = call["num_inference_steps"]
        ratios = self.calibrate(pipe, call)
        return diffusers_cache(
            pipe,
            lambda _: MagCacheConfig(
                threshold=self.args[0],
                max_skip_steps=self.settings()["max_skip_steps"],
                num_inference_steps=steps,
                mag_ratios=ratios,
            ),
            apply_mag_cache,
        )

    def calibrate(self, pipe: Any, call: dict[str, Any]) -> list[float]:
        """MagCache's calibration run; its ratios are what diffusers logs at the end of it."""
        key = repr((id(pipe.transformer), sorted((k, v) for k, v in call.items() if k != "prompt")))
        if self.memo.get("key") != key:
            steps = call["num_inference_steps"]
            prompt = call["prompt"][:1] if isinstance(call["prompt"], list) else [call["prompt"]]
            config = MagCacheConfig(calibrate=True, num_inference_steps=steps)
            with (
                _captured_log("diffusers.hooks.mag_cache") as records,
                contextlib.redirect_stdout(io.StringIO()),
                restored(pipe),
                diffusers_cache(pipe, lambda _: config, apply_mag_cache),
                torch.inference_mode(),
                progress_bar_set(pipe, desc=f"{self.spec} calibration", leave=False),
            ):
                pipe(**{**call, "prompt": prompt}, generator=torch.Generator("cpu").manual_seed(0))
            found = [r.getMessage() for r in records if r.getMessage().startswith("MagCache Calibration Results:")]
            if not found:
                raise RuntimeError(
                    "MagCache's calibration run reported no ratios; does the transformer have blocks "
                    "diffusers' MagCache recognises?"
                )
            text = found[-1].split(":", 1)[1].strip().strip("[]")
            self.memo.update(key=key, ratios=[float(v) for v in text.split(",")])
        return self.memo["ratios"]


@contextlib.contextmanager
def _captured_log(name: str) -> Iterator[list[logging.LogRecord]]:
    """The INFO records of one logger, kept from its usual handlers (diffusers shows WARNING and above)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger(name)
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield records
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


FAMILIES: tuple[type[Peer], ...] = (FirstBlockCache, PyramidAttentionBroadcast, FasterCache, TaylorSeer, MagCache)
