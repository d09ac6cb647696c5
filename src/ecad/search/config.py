"""A search's configuration: everything that determines its result, checked on creation, and read back from the
``config.json`` of runs made by earlier ecad versions (settings added since take the value those runs had)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..metrics import METRICS, RowMetric
from ..names import ACTIONS, COMPILE_SCOPES, CONVENTIONS, COSTS, DTYPE_NAMES, STRATEGIES
from ..runtime.compilation import CompileConfig, compile_config
from ..validation import (
    check_fields,
    checked,
    compile_backend,
    device,
    flag,
    one_of,
    optional,
    pixels,
    real,
    text,
    texts,
    whole,
)
from .racing import CONFIDENCE, FIRST_GENERATION, FIRST_ROWS, RACE_BEFORE, RACE_FROM_ROWS
from .store import CorruptRunError

CONFIG_FORMAT = "ecad.search-run/1"
# How costs are counted; a run is only resumed with the cost model it was started with (runs from before costs were
# counted at the observed call have no such field).
COST_MODEL = "observed-call/1"
_COST_MODEL_BEFORE = "assumed-inputs/0"
# Settings that may differ on --resume without changing any result.
RESUMABLE_CHANGES = ("generations", "device", "budget")


def default_strategy(metric: str, rows: int) -> str:
    """A new run's strategy when none is asked for: race where it was measured to reach paper's front for less (a
    metric of per-row scores, at least ``RACE_FROM_ROWS`` calibration rows), else fast (paper's evaluations, shared
    prefixes computed once). Paper is the reproduction, asked for by name."""
    per_row = metric in METRICS and issubclass(METRICS[metric], RowMetric)
    return "race" if per_row and rows >= RACE_FROM_ROWS else "fast"


def speedup_label(cost: str) -> str:
    """What a search's speedups are: predicted by its cost model (MACs or the measured latency model), not timed."""
    return "MAC speedup" if cost == "macs" else "latency-model speedup"


@dataclass
class SearchConfig:
    """Everything that determines a search's result (plus where it runs); every field is checked on creation."""

    model: str = checked(text)
    prompts: list[str] = checked(texts)
    metric: str = checked(text, default="fidelity")
    population: int = checked(whole(2), default=72)
    generations: int = checked(whole(1), default=100)
    images_per_prompt: int = checked(whole(1), default=1)
    num_steps: int = checked(whole(2), default=20)  # step 0 always computes: one step leaves nothing to search
    height: int | None = checked(optional(pixels), default=None)
    width: int | None = checked(optional(pixels), default=None)
    guidance_scale: float = checked(real(0), default=4.5)
    batch_size: int = checked(whole(1), default=8)
    seed: int = checked(whole(0), default=0)
    cost: str = checked(one_of(COSTS), default="macs")
    convention: str = checked(one_of(CONVENTIONS), default="full")
    crossover_points: int = checked(whole(1), default=4)
    crossover_prob: float = checked(real(0, 1), default=0.9)
    mutation_prob: float = checked(real(0, 1), default=0.05)
    device: str = checked(device, default="auto")
    dtype: str = checked(one_of(DTYPE_NAMES), default="float32")
    cost_model: str = checked(text, default=COST_MODEL)
    strategy: str | None = checked(optional(one_of(STRATEGIES)), default=None)  # None: default_strategy's
    budget: float | None = checked(optional(real(above=0)), default=None)  # image-equivalents; None: no cap
    actions: str = checked(one_of(ACTIONS), default="reuse")
    race_rows: float = checked(real(above=0, maximum=1), default=FIRST_ROWS)  # share of rows raced first
    race_confidence: float = checked(real(0.5, 0.999), default=CONFIDENCE)  # 0.5: compare the first rows' means
    race_first_generation: bool = checked(flag, default=FIRST_GENERATION)  # race generation 0 against itself
    screen: int = checked(whole(1), default=1)  # offspring made per evaluated one, ranked by the surrogate; 1: none
    compile: str | None = checked(
        optional(one_of(COMPILE_SCOPES)), default=None
    )  # latency measured compiled; None: eager
    compile_backend: str | None = checked(optional(compile_backend), default=None)  # None: inductor (with compile)

    def __post_init__(self) -> None:
        check_fields(self)
        rows = len(self.prompts) * self.images_per_prompt
        if self.strategy is None:
            self.strategy = default_strategy(self.metric, rows)
        if self.strategy == "race" and rows < 3:
            raise ValueError(
                f"--strategy race needs at least 3 calibration rows (2 scored first, the rest raced "
                f"for), this run has {rows} (prompts x images per prompt); add prompts or "
                "--images-per-prompt, or use --strategy fast."
            )
        raced = (self.race_rows, self.race_confidence, self.race_first_generation)
        if self.strategy != "race" and raced != (FIRST_ROWS, CONFIDENCE, FIRST_GENERATION):
            raise ValueError(
                f"--race-rows, --race-confidence and --race-first-generation set how --strategy race "
                f"races; this run's strategy is {self.strategy}: add --strategy race or leave them out."
            )
        if self.compiled is not None and self.cost != "latency":
            raise ValueError(
                "--compile measures the latency cost compiled, and this run counts MACs (which do not "
                "depend on compiling): add --cost latency or leave --compile out."
            )
        if self.strategy == "paper" and self.screen > 1:
            raise ValueError(
                "--screen changes which offspring are evaluated, and --strategy paper is the paper's "
                "search unchanged: use --strategy fast or race with --screen."
            )

    @property
    def compiled(self) -> CompileConfig | None:
        """How the latency cost is measured compiled (``None``: eager)."""
        return compile_config(self.compile, self.compile_backend)

    @property
    def forecast_order(self) -> int | None:
        """The forecast order the search's genes use, or ``None`` for the paper's two actions."""
        return 1 if "forecast" in self.actions else None

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "config.json") -> SearchConfig:
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CorruptRunError(
                f"{source} is not an ecad search config (format {found!r}, expected "
                f"{CONFIG_FORMAT!r}); use another --out."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        before = {"cost_model": _COST_MODEL_BEFORE, "strategy": "paper"}  # runs from before these were settings
        if data.get("strategy") == "race":
            before |= RACE_BEFORE
        else:  # racing settings mean nothing to another strategy (and earlier defaults were other values)
            names -= set(RACE_BEFORE)
        try:
            return cls(**{**before, **{k: v for k, v in data.items() if k in names}})
        except (TypeError, ValueError) as err:
            raise CorruptRunError(f"{source} is damaged ({err}); restore it or use another --out.") from None
