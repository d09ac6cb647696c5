"""Scoring one candidate schedule: generate the calibration set under it, measure quality and cost."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from ..adapters import ModelLayout
from ..adapters.layout import model_layout
from ..cost.latency import LatencyTable, measure_call_latency
from ..cost.table import CostTable
from ..generation import Calibration, CalibrationGenerator, Generated
from ..metrics import QualityMetric, RowMetric, get_metric
from ..models.loading import load_pipeline
from ..schedule import CacheSchedule, schedule_key
from ..validation import write_json
from .config import SearchConfig
from .prefix import apply_prefix_replay, prefix_plan, remove_prefix_replay, runtime_table
from .samples import SampleStore
from .store import CorruptRunError, Evaluation

logger = logging.getLogger(__name__)


class CandidateEvaluator:
    """``evaluator(schedule) -> Evaluation``; the text is encoded and the reference generated once per run. Each
    candidate's first images are kept in the run directory for the report (:class:`SampleStore`).

    ``strategy="fast"`` (and ``"race"``) evaluates a batch of candidates (:meth:`map`) with exact shared-prefix
    reuse (:mod:`ecad.search.prefix`): the same evaluations, fewer transformer calls. Every evaluation records the
    compute it spent in image-equivalents (``compute``: one = one uncached image's MACs; steps it replayed cost 0).
    Given ``rows`` (racing, :mod:`ecad.search.racing`), only those calibration rows are generated and scored, and
    the evaluation also records their per-row quality (``row_quality``) and how many there are (``rows_scored``).
    """

    def __init__(
        self,
        generator: CalibrationGenerator,
        metric: QualityMetric,
        cost_table: CostTable,
        run_path: Path,
        latency: LatencyTable | None = None,
        strategy: str = "paper",
    ) -> None:
        self.generator = generator
        self.metric = metric
        self.cost_table = cost_table
        self.latency = latency
        self.samples = SampleStore(run_path)
        self.layout = model_layout(generator.pipe)
        if strategy == "race" and not isinstance(metric, RowMetric):
            raise ValueError(
                f"--strategy race compares candidates row by row, and the metric {metric.name!r} is not "
                "a mean of per-row scores (a distance between image sets); use --strategy fast, or a "
                "per-row metric (tiny-reward, fidelity, image-reward, pickscore, clip)."
            )
        if metric.needs_reference:
            metric.prepare(self._reference(run_path / "reference.safetensors"))
        self.prefix = apply_prefix_replay(generator.pipe.transformer) if strategy in ("fast", "race") else None

    def _reference(self, path: Path) -> Generated:
        """Uncached images of the calibration rows, generated once and kept in the run directory."""
        if path.is_file():
            try:
                tensors = load_file(path)
            except Exception as err:  # safetensors raises several types for a damaged file
                raise CorruptRunError(f"{path} is damaged ({err}); delete it to regenerate the reference.") from None
            return Generated(tensors["images"], tensors["latents"], list(self.generator.prompts))
        logger.info("generating the uncached reference images (%d rows)", len(self.generator.prompts))
        reference = self.generator(None, progress=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"images": reference.images.contiguous(), "latents": reference.latents.contiguous()}, str(tmp))
        tmp.replace(path)
        return reference

    def __call__(self, schedule: CacheSchedule, rows: range | None = None) -> Evaluation:
        generated = self.generator(schedule, rows=rows)
        key = schedule_key(schedule)
        if generated.first == 0:
            self.samples.keep(key, generated.images)
        if rows is None:
            scores = self.metric(generated)
            raced = {}
        else:
            per_row = self.metric.rows(generated)
            scores = self.metric.means(per_row)
            raced = {"row_quality": per_row["quality"].tolist(), "rows_scored": len(rows)}
        steps = self.cost_table.step_macs(schedule)
        replayed = self.prefix.plan.replay if self.prefix is not None and self.prefix.plan is not None else 0
        image = self.cost_table.full_step_macs * schedule.num_steps
        extra = {"macs": sum(steps), "compute": len(generated.images) * sum(steps[replayed:]) / image, **raced}
        cost = float(extra["macs"])
        if self.latency is not None:
            cost = extra["seconds"] = self.latency.schedule_seconds(schedule)
        return Evaluation(key, float(scores["quality"]), cost, {**scores, **extra})

    def map(self, schedules: list[CacheSchedule], rows: range | None = None) -> Iterator[Evaluation]:
        """Evaluate a generation's candidates (on ``rows`` only, if given), each yielded when done (with prefix
        reuse: in its plan's order)."""
        if self.prefix is None:
            for schedule in schedules:
                yield self(schedule, rows)
            return
        try:
            for step in prefix_plan([runtime_table(s, self.layout) for s in schedules]):
                self.prefix.begin(step)
                yield self(schedules[step.index], rows)
        finally:
            self.prefix.clear()

    def close(self) -> None:
        self.generator.close()
        if self.prefix is not None:
            remove_prefix_replay(self.generator.pipe.transformer)
            self.prefix = None


def _latency_table(pipe: Any, generator: CalibrationGenerator, config: SearchConfig, path: Path) -> LatencyTable:
    """Measured once per run and kept, so a resumed run optimises exactly the same costs."""
    compile = config.compiled
    measures = "eager" if compile is None else compile.label
    if path.is_file():
        try:
            table = LatencyTable.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise CorruptRunError(f"{path} is damaged ({err}); delete it to measure again.") from None
        wanted = (None, None) if compile is None else (compile.scope, compile.backend_name)
        if (table.compile_scope, table.compile_backend) != wanted:
            raise CorruptRunError(
                f"{path} was measured {table.compiled_as} and this run measures latency {measures}; "
                "delete it to measure again."
            )
        return table
    rows = min(config.batch_size, len(generator.prompts))
    logger.info(
        "measuring per-block and per-component latency on %s (%d images per call, %s)",
        generator.pipe.device,
        rows,
        measures,
    )
    table = measure_call_latency(
        pipe,
        generator.observe(rows),
        generator.height,
        generator.width,
        forecasts=config.forecast_order is not None,
        compile=compile,
    )
    write_json(table.to_dict(), path)
    return table


def build_evaluator(
    config: SearchConfig, run_path: Path, metric: QualityMetric | None = None
) -> tuple[CandidateEvaluator, ModelLayout, float]:
    """Load the model and everything a candidate needs; returns the evaluator, the layout and the no-cache cost."""
    pipe = load_pipeline(config.model, device=config.device, dtype=config.dtype)
    generator = CalibrationGenerator(pipe, Calibration.of(config))
    generator.warm_up()
    table = generator.cost_table(config.convention)
    latency = None
    full_cost = float(table.full_step_macs * config.num_steps)
    if config.cost == "latency":
        latency = _latency_table(pipe, generator, config, run_path / "latency.json")
        full_cost = latency.full_step_seconds * config.num_steps
    evaluator = CandidateEvaluator(
        generator, metric or get_metric(config.metric), table, run_path, latency, config.strategy
    )
    return evaluator, model_layout(pipe), full_cost
