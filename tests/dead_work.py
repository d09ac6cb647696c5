"""An oracle for dead recomputes, written from the definition and independent of ``ecad.pruning``.

A source component's recompute at step s is dead iff taking it away changes no value a consumer reads: simulate, step
by step, which version of the source's output (the step it was computed at) each recomputing consumer reads, and
compare with the simulation where the source reuses at s.
"""

from __future__ import annotations

import torch


def _reads(bits: torch.Tensor, block: int, source: int, consumers: list[int]) -> list[tuple[int, int, int | None]]:
    version, reads = None, []
    for step in range(bits.shape[0]):
        if bits[step, block, source]:  # within a step the source runs before its consumers
            version = step
        reads += [(step, consumer, version) for consumer in consumers if bits[step, block, consumer]]
    return reads


def live_bits(bits: torch.Tensor, feeds: tuple[tuple[int, int, int], ...]) -> torch.Tensor:
    """``bits[steps, blocks, components]`` without the dead recomputes, by brute force over every recompute bit."""
    consumers: dict[tuple[int, int], list[int]] = {}
    for block, source, consumer in feeds:
        consumers.setdefault((block, source), []).append(consumer)
    live = bits.clone()
    for (block, source), readers in consumers.items():
        reference = _reads(bits, block, source, readers)
        for step in range(bits.shape[0]):
            if bits[step, block, source]:
                trial = bits.clone()
                trial[step, block, source] = False
                if _reads(trial, block, source, readers) == reference:
                    live[step, block, source] = False
    return live
