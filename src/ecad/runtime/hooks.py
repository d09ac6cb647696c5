"""The runtime's diffusers ``ModelHook``s: they make each component recompute, replay or forecast per the plan.

- :class:`StepTrackerHook` on the transformer counts the passes of a step (true CFG: each pass has its own cached
  outputs) and hands every block its plan. For a bare transformer (no scheduler) it first places the call by its
  timestep: that reads the timestep's value, so under ``torch.compile`` it is one graph break per call, and
  ``fullgraph=True`` needs a pipeline.
- :class:`BlockSkipHook` on every block whose adapter declares a skip forward (:mod:`ecad.adapters.skip`): one
  decision per block and step. It runs that forward, which computes (and keeps) the components that run and leaves
  out the norms and modulations feeding only those that do not. :class:`ComponentCacheHook`, on the component
  modules of other blocks (or all, with ``prune=False``; PixArt: ``attn1``, ``attn2``, ``ff``), runs the module and
  keeps its raw output (a tensor or, for FLUX/SD3 joint attention, a tuple, kept as is), or
  returns the kept output, which the block then gates and adds exactly as if it had been computed; at a forecast
  step, the extrapolation of its last computed outputs.

Hooks read a block's plan and kept outputs from its :class:`ecad.runtime.outputs.BlockCache`, never the block's index,
so under regional compilation the blocks with equal plans share one graph; whole-model compilation compiles one graph
per distinct step plan. Forecast times are tensors, so they never recompile.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.hooks import ModelHook
from torch import nn

from ..adapters.skip import BlockSkip
from ..schedule import ScheduleError
from .hook_registry import registry_of
from .outputs import BlockCache
from .plans import RUN
from .state import CacheState
from .steps import argument_position, call_argument, scalar

STEP_HOOK = "ecad_step_tracker"
COMPONENT_HOOK = "ecad_component_cache"
BLOCK_HOOK = "ecad_block_skip"
HOOK_NAMES = (STEP_HOOK, COMPONENT_HOOK, BLOCK_HOOK)


class StepTrackerHook(ModelHook):
    """On the transformer: starts each call (its pass, every block's plan); for a bare transformer, first places the
    call by its timestep."""

    _is_stateful = True

    def __init__(self, state: CacheState, timestep_arg: str, sample_arg: str) -> None:
        super().__init__()
        self.state = state
        self.names = (timestep_arg, sample_arg)

    def initialize_hook(self, module: nn.Module) -> nn.Module:
        for name in self.names:
            argument_position(type(module), name)  # looked up now, not inside a traced call
        return module

    def _argument(self, module: nn.Module, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            value = call_argument(module, name, args, kwargs)
        except TypeError:
            value = None
        if value is None:
            raise ScheduleError(f"ecad needs the transformer's {name!r} argument to know the denoising step.")
        return value

    @torch.compiler.disable(recursive=False)  # reads the timestep's value: a graph break, for bare transformers only
    def _place(self, module: nn.Module, timestep: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = self._argument(module, self.names[1], args, kwargs)
        self.state.place(scalar(timestep), int(sample.shape[0]), sample)

    def pre_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        state = self.state
        timestep = self._argument(module, self.names[0], args, kwargs)
        if not state.driven:
            self._place(module, timestep, args, kwargs)
        state.start_call(timestep)
        return args, kwargs

    def reset_state(self, module: nn.Module) -> nn.Module:
        self.state.reset()
        return module


class ComponentCacheHook(ModelHook):
    """On one component module of a block without a skip forward (or with ``prune=False``): compute and keep its raw
    output, or replay (or forecast) the kept one."""

    def __init__(self, cache: BlockCache, component: int) -> None:
        super().__init__()
        self.cache = cache
        self.component = component

    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        cache = self.cache
        if cache.actions[self.component][0] == RUN:
            return cache.run(self.component, self.fn_ref.original_forward, *args, **kwargs)
        return cache.output(self.component)


class BlockSkipHook(ModelHook):
    """On one block whose adapter declares a skip forward: runs it at every step, so the block's one decision per
    step is its plan (the skip forward equals the block's own forward where everything runs, and leaves out the work
    that only feeds components that do not run elsewhere); it keeps the outputs of the components it computes."""

    def __init__(self, cache: BlockCache, skip: BlockSkip) -> None:
        super().__init__()
        self.cache = cache
        self.skip_forward = skip.forward

    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return self.skip_forward(module, self.cache, *args, **kwargs)


def installed_state(transformer: nn.Module) -> CacheState | None:
    """The state of the ecad cache whose hooks are on ``transformer``, if any."""
    registry = registry_of(transformer)
    hook = registry.get_hook(STEP_HOOK) if registry is not None else None
    return None if hook is None else hook.state
