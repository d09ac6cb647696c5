"""Compute that really ran: every (block, component) execution and transformer call, counted while images generate.

A learned schedule says in advance what runs; dynamic methods (First Block Cache, MagCache, DBCache, ...) decide
per batch while generating, and FasterCache even runs the transformer on half the batch at some steps. So the
evaluation's compute column is measured the same way for every row: :class:`ExecutionCounter` puts a counting hook
innermost on every component module (it counts only when the component's own forward really runs, whatever hooks
are layered above it) and watches every transformer call. A transformer call's outside part (embeddings, adaLN,
final layer) is counted with the batch its blocks ran at, or, when no component ran (MagCache skipping a whole
step), with the batch it was called with.

:meth:`Executed.macs` prices the counts with a :class:`~ecad.cost.table.CostTable`: MACs per image, in the table's
convention. The table is only used there, so a change to the cost model changes this one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from torch import nn

from ..adapters import get_adapter
from ..cost.table import CostTable
from ..peers.base import PipelineState
from ..runtime.steps import StepClock, call_argument, scalar

_COUNT_HOOK = "ecad_execution_counter"


def _batch(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return int(value.shape[0])
    raise TypeError("a counted component was called without a tensor argument")


@dataclass
class Executed:
    """Batch rows that ran, summed over all generations counted: per step and (block, component), and per step
    for the transformer's outside part; ``images`` is how many images those generations made."""

    components: torch.Tensor  # int64 [steps, blocks, components]
    outside: torch.Tensor  # int64 [steps]
    images: int

    def macs(self, table: CostTable) -> float:
        """Executed MACs per image. The table prices one image's denoising step: ``table.calls_per_step`` transformer
        calls of ``table.batch_size`` rows each (CFG's two halves are one call of 2 rows, or two of 1).

        A component that ran is charged its input too (``table.input_macs``) and the outside part without those
        inputs, as ecad's runtime spends it; so a schedule's count equals ``table.schedule_macs`` exactly. For a
        method that replaces a module but still runs its block (PAB, FasterCache, TaylorSeer), the inputs of the
        replaced modules are then not counted: exact where the adapter's input MACs are zero (PixArt, tiny-shapes),
        a lower bound elsewhere.
        """
        units, always = table.component_macs, table.outside_macs
        if table.input_macs is not None:
            units, always = units + table.input_macs, always - int(table.input_macs.sum())
        total = always * int(self.outside.sum()) + int((self.components * units).sum())
        return total / (table.batch_size * table.calls_per_step * self.images)

    def recompute_fraction(self, exists: torch.Tensor) -> float:
        """The share of a full generation's (step, block, component, batch row) work that ran (1 = no caching)."""
        full = int(self.outside.max()) * self.components.shape[0] * int(exists.sum())
        return int(self.components.sum()) / full if full else 0.0

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"components": self.components, "outside": self.outside, "images": torch.tensor(self.images)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> Executed:
        return cls(tensors["components"], tensors["outside"], int(tensors["images"]))


class _ComponentCount(ModelHook):
    """Innermost on a component: runs only when the component really computes."""

    def __init__(self, counter: ExecutionCounter, block: int, component: int) -> None:
        super().__init__()
        self.counter = counter
        self.index = (block, component)

    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        self.counter.ran(self.index, _batch(args, kwargs))
        return self.fn_ref.original_forward(*args, **kwargs)


class ExecutionCounter:
    """Counts, per denoising step, what the pipeline's transformer really executes.

    Enter it before any caching method is applied, so that its component hooks are innermost; call :meth:`start`
    before each method's generations and :meth:`result` after them. Leaving removes every hook it added.
    """

    def __init__(self, pipe: Any, num_steps: int) -> None:
        self.pipe = pipe
        self.transformer = pipe.transformer
        self.adapter = get_adapter(self.transformer)
        layout = self.adapter.layout(self.transformer)
        self.shape = (num_steps, *layout.exists.shape)
        self.clock = StepClock()
        self.state: PipelineState | None = None
        self.start()

    def start(self) -> None:
        self.components = torch.zeros(self.shape, dtype=torch.int64)
        self.outside = torch.zeros(self.shape[0], dtype=torch.int64)
        self.clock = StepClock()
        self.call_batch: int | None = None
        self.input_batch = 0

    def result(self, images: int) -> Executed:
        return Executed(self.components.clone(), self.outside.clone(), images)

    def ran(self, index: tuple[int, int], batch: int) -> None:
        self.components[(self.clock.step, *index)] += batch
        self.call_batch = batch

    def _call_starts(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.clock.tick(scalar(call_argument(module, self.adapter.timestep_arg, args, kwargs)))
        if self.clock.step >= self.shape[0]:
            raise RuntimeError(f"the generation ran more than the {self.shape[0]} steps the counter was made for.")
        self.input_batch = int(call_argument(module, self.adapter.sample_arg, args, kwargs).shape[0])
        self.call_batch = None

    def _call_ends(self, *_: Any) -> None:
        self.outside[self.clock.step] += self.call_batch or self.input_batch

    def __enter__(self) -> ExecutionCounter:
        self.state = PipelineState(self.pipe)
        for block, component, _, module in self.adapter.components(self.transformer):
            HookRegistry.check_if_exists_or_initialize(module).register_hook(
                _ComponentCount(self, block, component), _COUNT_HOOK
            )
        self.handles = [
            self.transformer.register_forward_pre_hook(self._call_starts, with_kwargs=True),
            self.transformer.register_forward_hook(self._call_ends),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        if self.state is not None:
            self.state.restore()
