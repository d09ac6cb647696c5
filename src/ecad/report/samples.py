"""Sample images for the report's points: read from an ``ecad eval`` directory, taken from the images the search
kept (:class:`ecad.search.samples.SampleStore`), or generated with the run's model.

Samples are matched to points by schedule key, so an evaluation of front files (or of baselines that the search also
evaluated) shows up on the right points.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..evaluation import ImageStore
from ..evaluation.images import open_image
from ..generation import Calibration, CalibrationGenerator
from ..metrics.images import to_pil
from ..models.loading import load_pipeline
from ..schedule import CacheSchedule
from ..search import SearchConfig
from ..search.samples import MAX_SIDE, SampleStore
from .pictures import data_uri

logger = logging.getLogger(__name__)

Sample = dict[str, str]  # {"src": data URI, "caption": prompt}


def eval_samples(store: ImageStore, name: str, limit: int) -> list[Sample]:
    entry = store.index["schedules"].get(name)
    if not entry:
        return []
    rows = store.index["rows"]
    return [
        {"src": data_uri(open_image(store.path / file), "JPEG", MAX_SIDE), "caption": rows[i]["prompt"]}
        for i, file in enumerate(entry["files"][:limit])
    ]


def search_samples(run_path: Path, config: SearchConfig, keys: list[str], limit: int) -> dict[str, list[Sample]]:
    """The images the search kept of each of ``keys`` (those it kept fewer than ``limit`` of are left out): the
    first calibration rows, captioned with their prompts."""
    store = SampleStore(run_path)
    captions = [p for p, _ in Calibration.of(config).rows][:limit]
    out = {}
    for key in keys:
        images = store.load(key, limit)
        if images is not None:
            out[key] = [
                {"src": data_uri(im, "JPEG", MAX_SIDE), "caption": c} for im, c in zip(images, captions, strict=True)
            ]
    return out


def generate_samples(config: SearchConfig, schedules: dict[str, CacheSchedule], limit: int) -> dict[str, list[Sample]]:
    """``limit`` images per schedule from the run's first prompts and seed, or nothing if the model cannot load."""
    try:
        pipe = load_pipeline(config.model, device=config.device, dtype=config.dtype)
    except (OSError, ValueError, ImportError) as err:
        logger.warning("no sample images: cannot load the run's model %s (%s)", config.model, err)
        return {}
    prompts = tuple(config.prompts[:limit])
    per_prompt = -(-limit // len(prompts))
    calibration = Calibration(
        prompts,
        per_prompt,
        config.num_steps,
        config.height,
        config.width,
        config.guidance_scale,
        config.batch_size,
        config.seed,
    )
    generator = CalibrationGenerator(pipe, calibration)
    captions = [p for p, _ in calibration.rows][:limit]
    out: dict[str, Any] = {}
    try:
        for key, schedule in tqdm(schedules.items(), desc="report sample images", unit="schedule"):
            images = generator(schedule).images[:limit]
            out[key] = [
                {"src": data_uri(to_pil(im), "JPEG", MAX_SIDE), "caption": c}
                for im, c in zip(images, captions, strict=True)
            ]
    finally:
        generator.close()
    return out
