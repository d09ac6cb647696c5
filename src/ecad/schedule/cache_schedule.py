"""`CacheSchedule`: which component of which block recomputes, reuses or forecasts at which denoising step.

A schedule is a boolean tensor ``recompute[steps, blocks, components]``: ``True`` recomputes the component,
``False`` reuses the raw output it produced the last time it ran. A third action, *forecast* (``forecast`` mask, the
character ``f`` in a file), extrapolates the raw output from the component's last computed outputs (TaylorSeer's
finite differences, order ``forecast_order``) instead of replaying the last one; :attr:`CacheSchedule.actions` holds
all three as ``0`` reuse, ``1`` recompute, ``2`` forecast. Models whose blocks do not all have the same
components (SD3's last block, FLUX's two block kinds) mark the pairs they lack in ``exists``; those bits are always
``False`` and cost nothing. Step 0 always computes, whatever its bits say (the cache is empty then): the stored bits
are kept as given so files round-trip exactly, and :meth:`CacheSchedule.effective` gives what actually runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..validation import write_json
from .checks import as_bool_tensor, checked_fields, step_count
from .fields import ACTION_CHARS, FORECAST, FORECAST_ORDERS, RECOMPUTE, ScheduleError, actions_of
from .formats import load_schedule, render_schedule, save_schedule, schedule_from_dict, schedule_to_dict
from .paper import PaperNaming, schedule_to_paper_dict
from .pruning import prune_dead

__all__ = ["ACTION_CHARS", "FORECAST_ORDERS", "CacheSchedule", "ScheduleError", "register_paper_naming", "schedule_key"]

# How the model families' paper files name components: each family's adapter hands its naming in when
# ``ecad.adapters`` is imported (as ``from ecad import CacheSchedule`` does), so files know no model.
PAPER_NAMINGS: list[PaperNaming] = []

# Metadata that describes particular bits and becomes false when the bits change (the generation ``settings`` a
# schedule was found under stay: they still say what it is meant to run with).
_BIT_DEPENDENT_METADATA = ("macs", "name", "paper", "source_format", "resampled_from_steps", "score", "measured")


def register_paper_naming(naming: PaperNaming) -> None:
    """Read and write paper files whose components are named as ``naming`` says (the latest registered first)."""
    PAPER_NAMINGS.insert(0, naming)


@dataclass(eq=False)
class CacheSchedule:
    """A cache schedule for one model layout and one number of denoising steps.

    Args:
        recompute: bool ``[steps, blocks, components]``; ``True`` = recompute.
        block_names: one name per block, as the model's adapter names them (PixArt: ``"0"``..``"27"``).
        component_names: one name per component slot (PixArt: ``attn1``, ``attn2``, ``ff``).
        exists: bool ``[blocks, components]``; ``False`` where the model has no such component. Default: all exist.
        metadata: free-form JSON-serialisable facts (model, MACs, where it came from).
        forecast: bool ``[steps, blocks, components]``; ``True`` = forecast (never where ``recompute`` is set).
            Default: no forecasting, the paper's two actions.
        forecast_order: the polynomial order a forecast extrapolates with (1: the last two computed outputs,
            2: the last three; with less history it uses what there is, with one output it reuses it).
    """

    recompute: torch.Tensor
    block_names: tuple[str, ...]
    component_names: tuple[str, ...]
    exists: torch.Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    forecast: torch.Tensor | None = None
    forecast_order: int = 1

    def __post_init__(self) -> None:
        self.recompute, self.block_names, self.component_names, self.exists, self.forecast = checked_fields(
            self.recompute, self.block_names, self.component_names, self.exists, self.forecast, self.forecast_order
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def full(
        cls,
        num_steps: int,
        block_names: Sequence[str],
        component_names: Sequence[str],
        exists: torch.Tensor | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CacheSchedule:
        """The schedule that recomputes everything: no caching."""
        num_steps = step_count(num_steps)
        mask = torch.ones(len(block_names), len(component_names), dtype=torch.bool) if exists is None else exists
        recompute = as_bool_tensor(mask).unsqueeze(0).repeat(num_steps, 1, 1)
        return cls(recompute, tuple(block_names), tuple(component_names), mask, dict(metadata or {}))

    @classmethod
    def from_array(
        cls,
        array: np.ndarray | torch.Tensor | Sequence,
        block_names: Sequence[str] | None = None,
        component_names: Sequence[str] = ("attn1", "attn2", "ff"),
        exists: np.ndarray | torch.Tensor | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CacheSchedule:
        """Build from a ``[steps, blocks, components]`` array of bools or 0/1; block names default to indices."""
        recompute = as_bool_tensor(array)
        if block_names is None and recompute.ndim == 3:
            block_names = [str(i) for i in range(recompute.shape[1])]
        return cls(recompute, tuple(block_names or ()), tuple(component_names), exists, dict(metadata or {}))

    def like(
        self, recompute: torch.Tensor | np.ndarray, forecast: torch.Tensor | np.ndarray | None = None, **metadata: Any
    ) -> CacheSchedule:
        """A schedule with this one's layout and forecast order and new bits (what a search does per candidate).

        Args:
            recompute: bool ``[steps, blocks, components]``; pairs a block lacks are cleared.
            forecast: where to forecast instead of reuse (default: nowhere).
            **metadata: added to the recorded settings, which are kept (scores and MACs are dropped).

        Returns:
            The new ``CacheSchedule``.
        """
        bits = as_bool_tensor(recompute) & self.exists
        forecasts = None if forecast is None else as_bool_tensor(forecast) & self.exists & ~bits
        kept = {k: v for k, v in self.metadata.items() if k not in _BIT_DEPENDENT_METADATA}
        return CacheSchedule(
            bits,
            self.block_names,
            self.component_names,
            self.exists,
            {**kept, **metadata},
            forecasts,
            self.forecast_order,
        )

    def with_actions(self, actions: torch.Tensor | np.ndarray, **metadata: Any) -> CacheSchedule:
        """:meth:`like` from an action array (``0`` reuse, ``1`` recompute, ``2`` forecast)."""
        codes = torch.as_tensor(np.asarray(actions)).to(torch.int64)
        if bool(((codes < 0) | (codes > FORECAST)).any()):
            raise ScheduleError("actions must be 0 (reuse), 1 (recompute) or 2 (forecast).")
        return self.like(codes == RECOMPUTE, codes == FORECAST, **metadata)

    def with_metadata(self, metadata: dict[str, Any]) -> CacheSchedule:
        """The same actions with ``metadata`` in place of this schedule's."""
        return CacheSchedule(
            self.recompute,
            self.block_names,
            self.component_names,
            self.exists,
            dict(metadata),
            self.forecast,
            self.forecast_order,
        )

    # ------------------------------------------------------------------ shape
    @property
    def num_steps(self) -> int:
        return self.recompute.shape[0]

    @property
    def num_blocks(self) -> int:
        return self.recompute.shape[1]

    @property
    def num_components(self) -> int:
        return self.recompute.shape[2]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.recompute.shape)  # type: ignore[return-value]

    @property
    def actions(self) -> torch.Tensor:
        """uint8 ``[steps, blocks, components]``: ``0`` reuse, ``1`` recompute, ``2`` forecast (as stored)."""
        return actions_of(self.recompute, self.forecast)

    @property
    def forecasts(self) -> bool:
        """Whether any step forecasts (a file then needs format ``ecad.schedule/2``)."""
        return bool(self.forecast.any())

    def same_layout(self, other: CacheSchedule) -> bool:
        return (
            self.block_names == other.block_names
            and self.component_names == other.component_names
            and torch.equal(self.exists, other.exists)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CacheSchedule):
            return NotImplemented
        return (
            self.same_layout(other)
            and torch.equal(self.recompute, other.recompute)
            and torch.equal(self.forecast, other.forecast)
            and self.forecast_order == other.forecast_order
        )

    def __hash__(self) -> int:
        return hash((self.block_names, self.component_names, self.actions.numpy().tobytes()))

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"CacheSchedule(steps={self.num_steps}, blocks={self.num_blocks}, components={list(self.component_names)}, "
            f"recompute={stats['recompute_fraction']:.1%})"
        )

    # ------------------------------------------------------------------ semantics
    def effective(self) -> torch.Tensor:
        """What runs: the bits with step 0 forced to recompute every existing component."""
        bits = self.recompute.clone()
        bits[0] = self.exists
        return bits

    def effective_forecast(self) -> torch.Tensor:
        """Where a forecast really runs: forecast steps after the component has computed at least twice (with one
        computed output a forecast is a reuse)."""
        computed_before = torch.cumsum(self.effective().to(torch.int64), dim=0) - self.effective().to(torch.int64)
        return self.forecast & (computed_before >= 2)

    def effective_actions(self) -> torch.Tensor:
        """:attr:`actions` of what runs: step 0 computes, forecasts without two computed outputs reuse."""
        return actions_of(self.effective(), self.effective_forecast())

    def history_needed(self) -> torch.Tensor:
        """bool ``[blocks, components]``: the components some step forecasts, whose older outputs must be kept."""
        return self.effective_forecast().any(dim=0)

    def resample(self, num_steps: int) -> CacheSchedule:
        """Map the schedule to ``num_steps`` denoising steps.

        Rule: target step ``t`` of ``T`` copies source step ``round(t * (S - 1) / (T - 1))`` of ``S``: the source
        step at the same fraction of the denoising trajectory (nearest neighbour in normalised time, first step to
        first, last to last). ``T == S`` is the identity, and resampling up then back down gives the original.

        Args:
            num_steps: the target step count.

        Returns:
            A new schedule (recorded settings kept, scores dropped, ``resampled_from_steps`` noted).

        Example:
            ```python
            schedule_28 = ecad.CacheSchedule.load("my_schedule.json").resample(28)
            ```
        """
        num_steps = step_count(num_steps)
        source = self.num_steps
        scale = (source - 1) / (num_steps - 1) if num_steps > 1 else 0.0
        index = torch.tensor([math.floor(t * scale + 0.5) for t in range(num_steps)])
        if num_steps == source:
            return self.with_metadata(self.metadata)
        resampled = self.like(self.recompute[index], self.forecast[index])
        resampled.metadata["resampled_from_steps"] = source
        return resampled

    def step_costs(
        self, component_costs: torch.Tensor, outside: float | int, feeds: Sequence[tuple[int, int, int]] = ()
    ) -> torch.Tensor:
        """Cost of every step: ``outside`` plus the ``[blocks, components]`` costs of what the step recomputes.

        ``feeds`` (a layout's "X only feeds Y" pairs) leaves out the recomputes nobody reads
        (:mod:`ecad.schedule.pruning`). A forecast costs no MACs (a few element-wise operations per output element, see
        :mod:`ecad.cost.counting`).
        """
        bits = self.live(feeds)
        return (bits.to(component_costs.dtype) * component_costs.unsqueeze(0)).sum(dim=(1, 2)) + outside

    def live(self, feeds: Sequence[tuple[int, int, int]]) -> torch.Tensor:
        """What the runtime computes: the effective bits less the recomputes nobody reads (``feeds``: a layout's "X
        only feeds Y" pairs, see :mod:`ecad.schedule.pruning`), keeping those a later forecast reads."""
        return prune_dead(self.effective(), feeds, self.history_needed()) if feeds else self.effective()

    def stats(self) -> dict[str, Any]:
        """Summary statistics of what actually runs (step 0 counts as full)."""
        bits = self.effective()
        possible = int(self.exists.sum()) * self.num_steps
        per_component = {}
        for c, name in enumerate(self.component_names):
            total = int(self.exists[:, c].sum()) * self.num_steps
            per_component[name] = float(bits[:, :, c].sum()) / total if total else 0.0
        per_step = [float(bits[s].sum()) / max(int(self.exists.sum()), 1) for s in range(self.num_steps)]
        return {
            "steps": self.num_steps,
            "blocks": self.num_blocks,
            "components": list(self.component_names),
            "existing_pairs": int(self.exists.sum()),
            "recompute_bits": int(bits.sum()),
            "possible_bits": possible,
            "recompute_fraction": float(bits.sum()) / possible if possible else 0.0,
            "forecast_bits": int(self.effective_forecast().sum()),
            "forecast_fraction": float(self.effective_forecast().sum()) / possible if possible else 0.0,
            "per_component_fraction": per_component,
            "per_step_fraction": per_step,
            "full_steps": sum(1 for f in per_step if f == 1.0),
            "cached_steps": sum(1 for f in per_step if f == 0.0),
        }

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return schedule_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheSchedule:
        return cls(**schedule_from_dict(data))

    def save(self, path: str) -> None:
        """Write this schedule in ecad's own JSON format (``ecad.schedule/1``; ``/2`` if it forecasts).

        Args:
            path: the file to write.
        """
        save_schedule(self, path)

    @classmethod
    def load(cls, path: str) -> CacheSchedule:
        """Read a schedule file: ecad's own format or the ECAD paper's published format (auto-detected).

        Args:
            path: a JSON schedule file.

        Returns:
            The schedule, with the metadata the file records (settings, score, MACs).

        Raises:
            ScheduleError: the file is missing, not strict JSON, or not a valid schedule; the message says which.

        Example:
            ```python
            with ecad.enable_cache(pipe, ecad.CacheSchedule.load("my_schedule.json")):
                image = pipe("a red fox in the snow").images[0]
            ```
        """
        return load_schedule(path, cls, PAPER_NAMINGS)

    def to_paper_dict(self) -> dict[str, Any]:
        """The schedule in the ECAD paper's JSON format (keeps the paper fields it was imported with)."""
        return schedule_to_paper_dict(self, PAPER_NAMINGS)

    def export_paper(self, path: str) -> None:
        write_json(self.to_paper_dict(), path)

    def render(self, on: str = "█", off: str = "·", forecast: str = "f") -> str:
        """A text picture: one row per existing component x block, one column per step (actions as stored)."""
        return render_schedule(self, on=on, off=off, forecast=forecast)


def _packed(bits: torch.Tensor) -> str:
    return np.packbits(bits.numpy().reshape(-1)).tobytes().hex()


def schedule_key(schedule: CacheSchedule) -> str:
    """A stable identity for what a schedule runs: its effective bits, packed as hex (``steps:recompute``); a
    schedule that really forecasts appends ``:f<order>:<forecast bits>``."""
    key = f"{schedule.num_steps}:" + _packed(schedule.effective())
    forecast = schedule.effective_forecast()
    return key + (f":f{schedule.forecast_order}:" + _packed(forecast) if bool(forecast.any()) else "")
