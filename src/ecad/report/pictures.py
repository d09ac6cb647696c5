"""Small inline pictures for the report: a schedule as a bitmap and images as data URIs."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from ..schedule import CacheSchedule

# recompute, reuse, component absent from the block, forecast
COLORS = np.array([[33, 102, 172], [208, 215, 222], [255, 255, 255], [230, 145, 56]], dtype=np.uint8)
_COLOR_OF_ACTION = np.array([1, 0, 3])  # reuse, recompute, forecast -> COLORS row


def schedule_image(schedule: CacheSchedule, width: int = 160, max_height: int = 320) -> Image.Image:
    """What runs (step 0 computes, forecasts in orange): one column per step, one row per block, blocks grouped by
    component with a blank row between groups; cells are scaled to about ``width`` pixels wide and at most
    ``max_height`` high."""
    index = _COLOR_OF_ACTION[schedule.effective_actions().numpy()]  # [steps, blocks, components]
    index = np.where(schedule.exists.numpy()[None], index, 2)
    blank = np.full((1, schedule.num_steps), 2)
    groups = [index[:, :, c].T for c in range(schedule.num_components)]  # [blocks, steps] each
    rows = np.concatenate([part for group in groups for part in (group, blank)][:-1])
    cell_w = max(1, width // schedule.num_steps)
    cell_h = max(1, min(cell_w, max_height // len(rows)))
    return Image.fromarray(COLORS[rows]).resize((cell_w * schedule.num_steps, cell_h * len(rows)), Image.NEAREST)


def data_uri(image: Image.Image, format: str = "PNG", max_side: int | None = None) -> str:
    """The image inline (``data:image/...;base64``); JPEG for photographs keeps the page small."""
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=format, **({"quality": 88} if format == "JPEG" else {}))
    mime = "jpeg" if format == "JPEG" else format.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
