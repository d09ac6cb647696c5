"""Sample images for the report's points: read from an ``ecad eval`` directory, or generated with the run's model.

Samples are matched to points by schedule key, so an evaluation of front files (or of baselines that the search also
evaluated) shows up on the right points.
"""

from __future__ import annotations

import logging
from typing import Any

from tqdm.auto import tqdm

from ..evaluation import ImageStore
from ..evaluation.images import open_image
from ..generation import Calibration, CalibrationGenerator
from ..loading import load_pipeline
from ..metrics.images import to_pil
from ..schedule import CacheSchedule
from ..search import SearchConfig
from .pictures import data_uri

logger = logging.getLogger(__name__)

Sample = dict[str, str]  # {"src": data URI, "caption": prompt}
MAX_SIDE = 256


def eval_samples(store: ImageStore, name: str, limit: int) -> list[Sample]:
    entry = store.index["schedules"].get(name)
    if not entry:
        return []
    rows = store.index["rows"]
    return [{"src": data_uri(open_image(store.path / file), "JPEG", MAX_SIDE), "caption": rows[i]["prompt"]}
            for i, file in enumerate(entry["files"][:limit])]


def generate_samples(config: SearchConfig, schedules: dict[str, CacheSchedule], limit: int) -> dict[str, list[Sample]]:
    """``limit`` images per schedule from the run's first prompts and seed, or nothing if the model cannot load."""
    try:
        pipe = load_pipeline(config.model, device=config.device, dtype=config.dtype)
    except (OSError, ValueError, ImportError) as err:
        logger.warning("no sample images: cannot load the run's model %s (%s)", config.model, err)
        return {}
    prompts = tuple(config.prompts[:limit])
    per_prompt = -(-limit // len(prompts))
    calibration = Calibration(prompts, per_prompt, config.num_steps, config.height, config.width,
                              config.guidance_scale, config.batch_size, config.seed)
    generator = CalibrationGenerator(pipe, calibration)
    captions = [p for p, _ in calibration.rows][:limit]
    out: dict[str, Any] = {}
    try:
        for key, schedule in tqdm(schedules.items(), desc="report sample images", unit="schedule"):
            images = generator(schedule).images[:limit]
            out[key] = [{"src": data_uri(to_pil(im), "JPEG", MAX_SIDE), "caption": c} for im, c in zip(images, captions)]
    finally:
        generator.close()
    return out
