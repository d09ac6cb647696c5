"""Every runtime decision of a schedule, worked out before any call: the plan a compiled graph is specialised on.

A cached generation decides, per step, block and component, whether the component runs (and how many of its outputs
to keep), replays its kept output, or forecasts from its kept outputs. All of that follows from the schedule and the
step a generation starts at: nothing depends on the data. So the runtime never decides inside a traced call; it reads
the :class:`BlockPlan` of each block, a constant for a given step. ``torch.compile`` guards on the plan's values, so
a graph is compiled once per distinct block plan (regional compilation) or step plan (whole model), then reused for
every step, pass and generation with the same plan.

Plans are interned: equal plans are one object, and a trajectory (the plans of every step of a generation that
starts at a given row) is built once per start row. A compiled call reads a block's actions as a tuple of constants,
guarded by value, so blocks may share one plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# What a component does at a step. Strings, not ints: dynamo guards a string's value in C++, while an int that differs
# between two compiled plans becomes symbolic, guarded by a Python expression at every call (an enum member reached
# from every block adds an identity guard per block).
RUN, REPLAY, FORECAST = "run", "replay", "forecast"
ACTIONS = (RUN, REPLAY, FORECAST)

# Every distinct plan built in this process: compiled graphs of all schedules run so far share dynamo's recompile limit.
SEEN_STEP_PLANS: set[StepPlan] = set()
SEEN_BLOCK_PLANS: set[BlockPlan] = set()


@dataclass(frozen=True)
class BlockPlan:
    """One block's decisions at one step.

    Args:
        actions: per schedule component, ``(action, keep, count)``: ``RUN`` keeps the new output after the last
            ``count`` kept ones, in a history of ``keep`` (``keep == 1``: the output alone); ``FORECAST`` extrapolates
            from the last ``count`` kept outputs; ``REPLAY`` returns the last one. Components the block lacks hold
            ``(RUN, 1, 0)`` and are never asked.
    """

    actions: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class StepPlan:
    """Every block's plan at one step, and what the step computes, replays and forecasts (the handle's counts)."""

    blocks: tuple[BlockPlan, ...]
    computed: int
    reused: int
    forecasted: int


class PlanBook:
    """The plans of one schedule on one model layout, built on demand and interned.

    Args:
        bits: ``[steps][blocks][components]``: recompute (what the runtime computes: effective, less dead work).
        forecast: the same shape: forecast rather than replay where the component does not compute.
        depth: ``[blocks][components]``: outputs each component keeps (``order + 1`` where some step forecasts it).
        exists: ``[blocks][components]``: which components the model has.
        unread: ``(block, source, consumer)``: a source's output is read only when its consumer runs (the blocks
            whose skip forward leaves the source out when the consumer does not run); counted only then.
    """

    def __init__(
        self,
        bits: list[list[list[bool]]],
        forecast: list[list[list[bool]]],
        depth: list[list[int]],
        exists: list[list[bool]],
        unread: tuple[tuple[int, int, int], ...] = (),
    ) -> None:
        self.bits, self.forecast, self.depth, self.exists, self.unread = bits, forecast, depth, exists, unread
        self._blocks: dict[BlockPlan, BlockPlan] = {}
        self._steps: dict[tuple[BlockPlan, ...], StepPlan] = {}
        self._trajectories: dict[int, list[StepPlan]] = {}
        kept = [[0] * len(row) for row in exists]
        self.fresh = self._step(0, kept)  # nothing kept: everything runs, whatever the row says

    @property
    def num_steps(self) -> int:
        return len(self.bits)

    def trajectory(self, start: int) -> list[StepPlan]:
        """The plans of steps ``start..`` of a generation (or a pass) whose first call is at row ``start``; index by
        the step itself (rows before ``start`` hold the fresh plan)."""
        plans = self._trajectories.get(start)
        if plans is None:
            kept = [[0] * len(row) for row in self.exists]
            plans = [self.fresh] * start + [self._step(step, kept) for step in range(start, self.num_steps)]
            self._trajectories[start] = plans
        return plans

    def distinct(self) -> tuple[int, int]:
        """Distinct step plans and block plans seen so far (with the trajectory from row 0 built)."""
        self.trajectory(0)
        return len(self._steps), len(self._blocks)

    def _step(self, step: int, kept: list[list[int]]) -> StepPlan:
        """Decide every component at ``step`` given what each keeps, and update ``kept`` to after the step."""
        blocks, counts = [], dict.fromkeys(ACTIONS, 0)
        for b, present in enumerate(self.exists):
            actions = []
            for c, exists in enumerate(present):
                depth, have = self.depth[b][c], kept[b][c]
                if not exists:
                    actions.append((RUN, 1, 0))
                    continue
                if have == 0 or (step < self.num_steps and self.bits[step][b][c]):
                    actions.append((RUN, depth, min(have, depth - 1)))
                    kept[b][c] = min(have + 1, depth)
                elif self.forecast[step][b][c] and have >= 2:
                    actions.append((FORECAST, depth, have))
                else:
                    actions.append((REPLAY, depth, have))
            for b2, source, consumer in self.unread:
                if b2 == b and actions[source][0] != RUN and actions[consumer][0] != RUN:
                    counts[actions[source][0]] -= 1  # left out by the skip forward: never read
            for c, exists in enumerate(present):
                counts[actions[c][0]] += exists
            blocks.append(self._intern(BlockPlan(tuple(actions))))
        key = tuple(blocks)
        if key not in self._steps:
            self._steps[key] = StepPlan(key, *counts.values())
            SEEN_STEP_PLANS.add(self._steps[key])
        return self._steps[key]

    def _intern(self, plan: BlockPlan) -> BlockPlan:
        SEEN_BLOCK_PLANS.add(plan)
        return self._blocks.setdefault(plan, plan)


def history_depth(history: torch.Tensor, order: int) -> list[list[int]]:
    """Outputs each component keeps: ``order + 1`` where ``history`` (bool ``[blocks, components]``) marks it."""
    return (1 + order * history.to(torch.int64)).tolist()
