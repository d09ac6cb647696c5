"""Small inline pictures for the report: a schedule as a bitmap and images as data URIs."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from ..schedule import CacheSchedule

# recompute, reuse, component absent from the block
COLORS = np.array([[33, 102, 172], [236, 239, 244], [255, 255, 255]], dtype=np.uint8)


def schedule_image(schedule: CacheSchedule, scale: int = 3) -> Image.Image:
    """What runs (step 0 computes): one row per component x block (grouped by component), one column per step."""
    bits = schedule.effective().numpy()  # [steps, blocks, components]
    exists = schedule.exists.numpy()
    index = np.where(bits, 0, 1)
    index = np.where(exists[None], index, 2)
    rows = index.transpose(2, 1, 0).reshape(-1, schedule.num_steps)  # component-major rows, step columns
    image = Image.fromarray(COLORS[rows])
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def data_uri(image: Image.Image, format: str = "PNG", max_side: int | None = None) -> str:
    """The image inline (``data:image/...;base64``); JPEG for photographs keeps the page small."""
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=format, **({"quality": 88} if format == "JPEG" else {}))
    mime = "jpeg" if format == "JPEG" else format.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
