"""Skipping recomputes whose output nothing reads ("X only feeds Y").

In a FLUX single-stream block, ``attn`` and ``proj_mlp`` feed only ``proj_out``. At a step where ``proj_out``
replays its cached output, their fresh outputs go nowhere at that step; they matter only if a later step reuses
them, that is if ``proj_out`` recomputes at a later step while the source still reuses, before the source computes
again. Otherwise computing them is wasted and can be skipped (the source keeps its older cached output, which is
never read), and the generation stays bit for bit the same. The ECAD paper's code computed them anyway; the paper's
MAC convention counts them, so the pruned cost is reported as a separate number.

A source that some step forecasts keeps every recompute: a forecast reads the source's older outputs too, so a
recompute that no consumer reads at its own step still feeds a later forecast.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["prune_dead"]


def prune_dead(
    bits: torch.Tensor, feeds: Iterable[tuple[int, int, int]], history: torch.Tensor | None = None
) -> torch.Tensor:
    """Clear the recompute bits of ``bits[steps, blocks, components]`` whose output is never read.

    ``feeds`` lists ``(block, source, consumer)``: the source component's output is only the consumer's input. A
    backward pass over the steps tracks whether the source's cached output is still read later: a recompute of the
    source at step ``s`` is dead when the consumer replays at ``s`` and nothing after ``s`` reads the cache.
    ``history`` (bool ``[blocks, components]``) marks the components a forecast reads the history of: never pruned.
    """
    pruned = bits.clone()
    for block, source, consumer in feeds:
        if history is not None and bool(history[block, source]):
            continue
        read_later = False  # is the source's cache, as it stands after this step, read by a later step?
        for step in range(bits.shape[0] - 1, -1, -1):
            computes, consumes = bool(pruned[step, block, source]), bool(bits[step, block, consumer])
            if computes:
                if not consumes and not read_later:
                    pruned[step, block, source] = False
                read_later = False
            elif consumes:
                read_later = True
    return pruned
