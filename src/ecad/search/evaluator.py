"""Scoring one candidate schedule: generate the calibration set under it, measure quality and cost."""

from __future__ import annotations

import logging
from pathlib import Path
from safetensors.torch import load_file, save_file

from ..generation import CalibrationGenerator, Generated
from ..latency import LatencyTable
from ..macs import CostTable
from ..metrics import QualityMetric
from ..schedule import CacheSchedule
from .store import CorruptRunError, Evaluation, schedule_key

logger = logging.getLogger(__name__)


class CandidateEvaluator:
    """``evaluator(schedule) -> Evaluation``; the text is encoded and the reference generated once per run."""

    def __init__(
        self, generator: CalibrationGenerator, metric: QualityMetric, cost_table: CostTable, run_path: Path,
        latency: LatencyTable | None = None,
    ) -> None:
        self.generator = generator
        self.metric = metric
        self.cost_table = cost_table
        self.latency = latency
        if metric.needs_reference:
            metric.prepare(self._reference(run_path / "reference.safetensors"))

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

    def __call__(self, schedule: CacheSchedule) -> Evaluation:
        generated = self.generator(schedule)
        scores = self.metric(generated)
        macs = self.cost_table.schedule_macs(schedule)
        extra = {"macs": macs}
        cost = float(macs)
        if self.latency is not None:
            cost = extra["seconds"] = self.latency.schedule_seconds(schedule)
        return Evaluation(schedule_key(schedule), float(scores["quality"]), cost, {**scores, **extra})

    def close(self) -> None:
        self.generator.close()
