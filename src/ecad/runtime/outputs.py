"""The kept outputs of a cached transformer and the arithmetic that forecasts from them.

:class:`OutputCache` holds every kept raw output; :class:`BlockCache` is one block's view of it for the call in
progress (its plan and its pass's outputs), which the runtime's hooks and the adapters' skip forwards read. Forecasts
are Lagrange extrapolations of a component's last computed outputs, in float64 weights.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from .plans import FORECAST, RUN, history_depth

MIN_PASSES = 4  # passes' output slots made up front (true CFG uses two, SD3's skip-layer guidance three)


class ForecastClock(Protocol):
    """What a :class:`BlockCache` reads of the cache state: the time forecasts extrapolate to (a float64 tensor)."""

    time: torch.Tensor


class OutputCache:
    """Every kept raw output, as ``passes[pass][block][component]``: the one place that holds what is cached.

    An entry is the component's last output, or, for a component that keeps a history (some step forecasts it),
    a tuple of its last computed ``(time, output)`` pairs, oldest first. ``dtype`` keeps floating outputs in a lower
    precision. The nested lists keep their identity for the cache's life (the hooks hold them), so :meth:`clear` and
    :meth:`restore` change them in place.
    """

    def __init__(self, num_blocks: int, num_components: int, dtype: torch.dtype | None = None) -> None:
        self.dtype = dtype
        self.shape = (num_blocks, num_components)
        self.passes: list[list[list[Any]]] = []
        self.depth = [[1] * num_components for _ in range(num_blocks)]
        self.slots(0)

    def set_history(self, history: torch.Tensor, order: int) -> None:
        """Keep ``order + 1`` outputs of the components marked in ``history`` (bool ``[blocks, components]``)."""
        self.depth = history_depth(history, order)

    def slots(self, pass_index: int) -> list[list[Any]]:
        """The kept outputs of one pass, by block; room is made for the pass after it too, outside any traced call
        (a compiled graph guards on the number of passes held)."""
        while len(self.passes) <= max(pass_index + 1, MIN_PASSES - 1):
            self.passes.append([[None] * self.shape[1] for _ in range(self.shape[0])])
        return self.passes[pass_index]

    def clear(self) -> None:
        for blocks in self.passes:
            for entries in blocks:
                entries[:] = [None] * len(entries)

    def snapshot(self) -> list[list[list[Any]]]:
        """What is kept now, to :meth:`restore` later (a shallow copy: a kept output is replaced by the next one, never
        changed in place, so the tensors can be shared)."""
        return [[list(entries) for entries in blocks] for blocks in self.passes]

    def restore(self, snapshot: list[list[list[Any]]]) -> None:
        self.clear()
        for p, blocks in enumerate(snapshot):
            for entries, saved in zip(self.slots(p), blocks, strict=True):
                entries[:] = saved

    def kept(self) -> list[Any]:
        """The kept outputs as stored (in ``dtype`` when one is set), forecast histories included."""
        return [
            value
            for blocks in self.passes
            for b, entries in enumerate(blocks)
            for c, entry in enumerate(entries)
            if entry is not None
            for value in ((entry,) if self.depth[b][c] == 1 else tuple(v for _, v in entry))
        ]

    def nbytes(self) -> int:
        """Memory the kept outputs hold: bytes of the distinct storages behind them."""
        storages = {}
        for value in self.kept():
            for tensor in _tensors(value):
                storage = tensor.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
        return sum(storages.values())


class BlockCache:
    """One block's plan for the call in progress and its kept outputs: all its hooks read (the :class:`BlockStep` a
    skip forward asks). It holds no block index, so that under ``torch.compile`` blocks with equal plans share one
    graph: a compiled block is a function of its inputs, the tensors it reads here and the plan's values. Its
    attributes are slots and its plan is the bare tuple of actions: every object and dict a compiled call passes
    through is a guard checked at every call.

    Args:
        clock: the cache state (its ``time`` tensor is the time forecasts extrapolate to).
        names: the schedule's component names, in schedule order (a component's index is its position).
        dtype: the precision kept outputs are stored in (None: as computed).
    """

    __slots__ = ("clock", "names", "dtype", "actions", "slot", "dtypes")

    def __init__(self, clock: ForecastClock, names: tuple[str, ...], dtype: torch.dtype | None) -> None:
        self.clock = clock
        self.names = names
        self.dtype = dtype
        self.actions: tuple[tuple[str, int, int], ...] = ()  # the block's BlockPlan.actions at the call in progress
        self.slot: list[Any] = []
        self.dtypes: list[torch.dtype | None] = [None] * len(names)

    def runs(self, component: str) -> bool:
        return self.actions[self.names.index(component)][0] == RUN

    def replay(self, component: str) -> Any:
        return self.output(self.names.index(component))

    def compute(self, component: str, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return self.run(self.names.index(component), module, *args, **kwargs)

    def run(self, component: int, forward: Any, *args: Any, **kwargs: Any) -> Any:
        """Compute a component that runs now and keep its output. The kept output it replaces is let go of first: the
        allocator then reuses that memory for the new output, as it would without a cache, instead of holding two and
        taking fresh pages every step (a history keeps the outputs the plan carries over)."""
        _, keep, count = self.actions[component]
        entry = self.slot[component]
        self.slot[component] = entry[len(entry) - count :] if keep > 1 and count else None
        output = forward(*args, **kwargs)
        self._keep(component, output)
        return output

    def output(self, component: int) -> Any:
        """The output of a component that does not run now: its last kept output, or its forecast."""
        action, keep, count = self.actions[component]
        entry = self.slot[component]
        if keep == 1:
            return self._restore(component, entry)
        if action == FORECAST:
            kept = entry[len(entry) - count :]
            return _combine(
                [self._restore(component, value) for _, value in kept],
                _lagrange([time for time, _ in kept], self.clock.time),
            )
        return self._restore(component, entry[-1][1])

    def _keep(self, component: int, output: Any) -> None:
        """Keep a computed output (after the ones :meth:`run` carried over, for a component with a history)."""
        if self.dtype is not None:
            self.dtypes[component] = _first_tensor(output).dtype
            output = _cast(output, self.dtype)
        if self.actions[component][1] == 1:
            self.slot[component] = output
        else:
            self.slot[component] = (self.slot[component] or ()) + ((self.clock.time, output),)

    def _restore(self, component: int, value: Any) -> Any:
        return value if self.dtype is None else _cast(value, self.dtypes[component])


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _first_tensor(value: Any) -> torch.Tensor:
    tensors = _tensors(value)
    if not tensors:
        raise TypeError(f"ecad caches tensor outputs; a component returned {type(value).__name__}.")
    return tensors[0]


def _lagrange(times: list[torch.Tensor], time: torch.Tensor) -> list[Any]:
    """Weights of the polynomial through the kept outputs at ``time`` (Lagrange form, in float64, e.g. order 1:
    ``y1 * (1 + w) + y0 * (-w)`` with ``w = (time - t1) / (t1 - t0)``). Eager, Python floats (what the hand formula
    and ``add_``'s alpha take); compiled, float64 tensors, so that new times never recompile."""
    if not torch.compiler.is_compiling():
        times, time = [float(t) for t in times], float(time)
    weights = []
    for j, tj in enumerate(times):
        weight: Any = 1
        for m, tm in enumerate(times):
            if m != j:
                weight = weight * ((time - tm) / (tj - tm))
        weights.append(weight)
    return weights


def _combine(outputs: list[Any], weights: list[Any]) -> Any:
    """``sum(w * y)`` over outputs of the same structure (tensors, nested tuples); non-floating parts: the last's."""
    last = outputs[-1]
    if isinstance(last, torch.Tensor):
        if not last.is_floating_point():
            return last
        total = last * weights[-1]
        for output, weight in zip(outputs[:-1], weights[:-1], strict=True):
            total = total + output * weight if isinstance(weight, torch.Tensor) else total.add_(output, alpha=weight)
        return total
    if isinstance(last, tuple):
        return tuple(_combine([o[i] for o in outputs], weights) for i in range(len(last)))
    return last


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """Floating tensors of a (possibly nested tuple) output in ``dtype``."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, tuple):
        return tuple(_cast(v, dtype) for v in value)
    return value
