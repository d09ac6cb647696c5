"""Generating a fixed calibration set under any schedule: same prompts, same noise, text encoded once.

Every candidate schedule of a search is judged on exactly the same inputs: each (prompt, seed) row gets its own
``torch.Generator`` seeded with its seed, and the prompts are encoded once for the whole run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from .adapters import get_adapter
from .cost.counting import count_calls
from .cost.observe import TransformerCall, observe_calls
from .models.loading import check_image_size, default_size, progress_bar_off
from .models.macs import count_macs
from .runtime.cache import enable_cache
from .schedule import CacheSchedule


@dataclass(frozen=True)
class Calibration:
    """What every candidate is generated from."""

    prompts: tuple[str, ...]
    images_per_prompt: int = 1
    num_steps: int = 20
    height: int | None = None
    width: int | None = None
    guidance_scale: float = 4.5
    batch_size: int = 8
    seed: int = 0

    @classmethod
    def of(cls, config: Any, **overrides: Any) -> Calibration:
        """The calibration part of a search or eval config, whose fields carry the same names."""
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls) if f.name != "prompts"}
        return cls(tuple(config.prompts), **{**values, **overrides})

    @property
    def rows(self) -> list[tuple[str, int]]:
        """(prompt, seed) per image: seeds seed..seed+images_per_prompt-1, as the paper's 0-9."""
        return [(p, self.seed + i) for p in self.prompts for i in range(self.images_per_prompt)]


@dataclass
class Generated:
    images: torch.Tensor  # float [N, 3, H, W] in [0, 1], on the CPU
    latents: torch.Tensor  # the final latents, on the CPU
    prompts: list[str]
    first: int = 0  # the calibration row its first image is (a subset of the rows: racing scores some rows first)


class CalibrationGenerator:
    """Generates the calibration set for schedule after schedule on one pipeline."""

    def __init__(self, pipe: Any, calibration: Calibration) -> None:
        self.pipe = pipe
        self.calibration = calibration
        self.adapter = get_adapter(pipe.transformer)
        size = default_size(pipe)
        self.height = calibration.height or size
        self.width = calibration.width or size
        check_image_size(pipe, self.height, self.width)
        rows = calibration.rows
        self.prompts = [p for p, _ in rows]
        self.seeds = [s for _, s in rows]
        with torch.inference_mode():
            self.embeddings = self.adapter.encode_prompts(pipe, self.prompts, calibration.guidance_scale)
        self.handle = None

    def __call__(self, schedule: CacheSchedule | None, progress: bool = False, rows: range | None = None) -> Generated:
        """The calibration rows (``rows``: only those, consecutive) under ``schedule`` (``None``: uncached);
        ``progress`` shows a bar of images."""
        if schedule is None:
            if self.handle is not None:
                self.handle.disable()
                self.handle = None
        elif self.handle is None:
            self.handle = enable_cache(self.pipe, schedule)
        else:
            self.handle.set_schedule(schedule)
        rows = rows if rows is not None else range(len(self.prompts))
        if rows.step != 1 or not 0 <= rows.start < rows.stop <= len(self.prompts):
            raise ValueError(f"rows {rows} are not consecutive calibration rows of 0..{len(self.prompts) - 1}.")
        images, latents = [], []
        size = self.calibration.batch_size
        bar = tqdm(total=len(rows), desc="images", unit="img", leave=False, disable=not progress)
        with bar, progress_bar_off(self.pipe):
            for start in range(rows.start, rows.stop, size):
                batch = slice(start, min(start + size, rows.stop))
                lat = self._generate(batch)
                latents.append(lat.float().cpu())
                images.append(self.adapter.decode_latents(self.pipe, lat, self.height, self.width).float().cpu())
                bar.update(len(self.prompts[batch]))
        return Generated(torch.cat(images), torch.cat(latents), self.prompts[rows.start : rows.stop], rows.start)

    def observe(self, rows: int = 1) -> list[TransformerCall]:
        """The transformer calls of one denoising step of this generator's own call for its first ``rows`` rows
        (``rows=1``: one image, the unit the cost model counts)."""
        with progress_bar_off(self.pipe):
            return observe_calls(self.pipe, lambda: self._generate(slice(0, rows)))

    def cost_table(self, convention: str = "full") -> Any:
        """The MAC cost table of one image generated the way this generator generates (:mod:`ecad.cost.counting`)."""
        if convention == "paper":
            return count_macs(self.pipe.transformer, self.height, self.width, convention="paper")
        return count_calls(self.pipe.transformer, self.observe(), self.height, self.width)

    def warm_up(self) -> None:
        """One short uncached call on the first batch, so the first candidate is not charged the model's one-time
        start-up (allocations, kernel selection), which would skew the search's ETA."""
        self.close()
        with progress_bar_off(self.pipe):
            self._generate(slice(0, self.calibration.batch_size), num_steps=2)

    @torch.inference_mode()
    def _generate(self, batch: slice, num_steps: int | None = None) -> torch.Tensor:
        kwargs = {k: v[batch] for k, v in self.embeddings.items()}
        generators = [torch.Generator("cpu").manual_seed(s) for s in self.seeds[batch]]
        return self.pipe(
            num_inference_steps=num_steps or self.calibration.num_steps,
            guidance_scale=self.calibration.guidance_scale,
            height=self.height,
            width=self.width,
            generator=generators,
            output_type="latent",
            **self.adapter.call_kwargs,
            **self.adapter.call_with_embeddings(),
            **kwargs,
        ).images

    def close(self) -> None:
        if self.handle is not None:
            self.handle.disable()
            self.handle = None
