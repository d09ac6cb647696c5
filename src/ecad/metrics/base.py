"""The quality-metric interface the search and evaluation use."""

from __future__ import annotations

from typing import ClassVar

from ..generation import Generated


class QualityMetric:
    """Scores a generated calibration set; higher ``quality`` is better.

    ``needs_reference`` metrics get the uncached generation of the same rows through :meth:`prepare` once per run.
    ``__call__`` returns ``{"quality": primary score, ...other numbers worth logging}``.
    """

    name: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False

    def prepare(self, reference: Generated) -> None:
        """Receive the uncached images of the calibration rows (only called when ``needs_reference``)."""

    def __call__(self, generated: Generated) -> dict[str, float]:
        raise NotImplementedError
