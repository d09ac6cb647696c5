"""Exact shared-prefix reuse (``--strategy fast``): candidates that agree on their first k steps compute them once.

Two schedules whose runtime tables (:func:`runtime_table`: what the runtime computes, forecasts and keeps) agree on
steps 0..k-1 give the transformer the same inputs at those steps and keep the same component outputs. So a generation's
candidates are evaluated in lexicographic order of their step rows (a depth-first walk of their prefix trie). Each one
replays, for the steps it shares with the candidate before it, the transformer outputs recorded when they were computed;
the pipeline's own loop and scheduler run every step as usual, so latents, scheduler state and noise draws come out the
same. At its branch step it restores the component outputs kept at the start of that step, then computes on.

In sorted order the longest prefix a candidate shares with any earlier one is the one it shares with its
predecessor, and the earlier candidate that computed that branch step for real is the last one that branched above
it: that one keeps the snapshot. Snapshots are shallow copies of the kept-output dict (a kept output is replaced by
the next, never changed in place), so they share tensors with each other and with the cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from torch import nn
from torch.utils._pytree import tree_map_only

from ..adapters import ModelLayout
from ..runtime.cache import active_cache
from ..runtime.hook_registry import remove_hooks
from ..runtime.state import runtime_bits
from ..schedule import CacheSchedule

_PREFIX_HOOK = "ecad_prefix_replay"


@dataclass(frozen=True)
class PrefixStep:
    """One candidate's part in a generation's plan."""

    index: int  # its position in the generation's list
    replay: int  # steps 0..replay-1 are replayed from the candidate before it
    snapshots: frozenset[int]  # steps at whose start it keeps the component outputs for later candidates


def runtime_table(schedule: CacheSchedule, layout: ModelLayout) -> torch.Tensor:
    """Per step, what the runtime does under ``schedule`` ``[steps, blocks, 3 x components]``: its runtime bits, where
    it forecasts, and which components keep a forecast history (of which order: a history changes what is kept from
    step 0 on). Equal rows 0..k-1: steps 0..k-1 run alike and leave the same kept outputs."""
    bits = runtime_bits(schedule, layout)
    history = schedule.history_needed().to(torch.uint8) * schedule.forecast_order
    return torch.cat(
        [bits.to(torch.uint8), schedule.effective_forecast().to(torch.uint8), history.expand(bits.shape[0], -1, -1)],
        dim=2,
    )


def prefix_plan(tables: Sequence[torch.Tensor]) -> list[PrefixStep]:
    """The evaluation order of candidates with these runtime bits ``[steps, blocks, components]``, and what each
    replays and keeps."""
    rows = [tuple(bytes(row.numpy().tobytes()) for row in table) for table in tables]
    order = sorted(range(len(rows)), key=lambda i: (rows[i], i))
    shared = [0] + [_common(rows[a], rows[b]) for a, b in itertools.pairwise(order)]
    keeps: list[set[int]] = [set() for _ in order]
    for m in range(1, len(order)):
        k = shared[m]
        if 0 < k < len(rows[order[m]]):  # k = all steps: everything replays, nothing to restore
            source = max(j for j in range(m) if shared[j] < k)
            keeps[source].add(k)
    return [PrefixStep(order[m], shared[m], frozenset(keeps[m])) for m in range(len(order))]


def _common(a: tuple[bytes, ...], b: tuple[bytes, ...]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _clone(output: Any) -> Any:
    return tree_map_only(torch.Tensor, torch.clone, output)


class PrefixReplayHook(ModelHook):
    """On the transformer, inside ecad's step tracker (so the cache state already knows the step): replays the
    recorded outputs of the shared steps, restores the kept component outputs at the branch step, and records what
    later candidates share. Each pipeline call of a candidate is one batch of its calibration rows, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.plan: PrefixStep | None = None
        self.batch = -1
        self.recorded: list[list[list[Any]]] = []  # per batch, per step, per pass: the transformer's output
        self.snapshots: list[dict[int, Any]] = []  # per batch: step -> kept component outputs at its start
        self.calls = {"computed": 0, "replayed": 0}

    def begin(self, step: PrefixStep) -> None:
        """The next pipeline calls are ``step``'s candidate; snapshots below a branch above it are never used again."""
        self.plan, self.batch = step, -1
        for snapshots in self.snapshots:
            for s in [s for s in snapshots if s > step.replay]:
                del snapshots[s]

    def clear(self) -> None:
        self.plan, self.recorded, self.snapshots = None, [], []

    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        cache = active_cache(module)
        if self.plan is None or cache is None:
            return self.fn_ref.original_forward(*args, **kwargs)
        state = cache.state
        step, pass_index = state.step, state.pass_index
        if step == 0 and pass_index == 0:
            self.batch += 1
            if self.batch == len(self.recorded):
                self.recorded.append([])
                self.snapshots.append({})
        recorded, snapshots = self.recorded[self.batch], self.snapshots[self.batch]
        if step < self.plan.replay:
            self.calls["replayed"] += 1
            return _clone(recorded[step][pass_index])
        if pass_index == 0:
            if step == self.plan.replay and step > 0:
                state.restore(snapshots[step])
            if step in self.plan.snapshots:
                snapshots[step] = state.snapshot()
        output = self.fn_ref.original_forward(*args, **kwargs)
        self.calls["computed"] += 1
        if pass_index == 0:
            del recorded[step:]
            recorded.append([])
        recorded[step].append(_clone(output))
        return output


def apply_prefix_replay(transformer: nn.Module) -> PrefixReplayHook:
    """Install the replay hook; it must sit inside the step tracker, so no ecad cache may be enabled yet."""
    if active_cache(transformer) is not None:
        raise RuntimeError(
            "apply_prefix_replay goes on before enable_cache (the step tracker must wrap it); disable the cache first."
        )
    hook = PrefixReplayHook()
    HookRegistry.check_if_exists_or_initialize(transformer).register_hook(hook, _PREFIX_HOOK)
    return hook


def remove_prefix_replay(transformer: nn.Module) -> None:
    if active_cache(transformer) is not None:
        raise RuntimeError("disable the ecad cache before removing the prefix replay hook (it wraps it).")
    remove_hooks(transformer, (_PREFIX_HOOK,))
