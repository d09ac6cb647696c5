"""Procedural captioned scenes: the data that tiny-shapes and its reward model are trained on.

A scene holds one object at a named position ("a small red circle at the top") or two objects in a
spatial relation ("a large blue square above a small yellow triangle"). Everything is deterministic
given a numpy ``Generator``; rendering is anti-aliased through signed distances so small shapes stay
recognisable at 64x64.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.12, 0.10),
    "green": (0.10, 0.78, 0.15),
    "blue": (0.12, 0.28, 0.98),
    "yellow": (0.96, 0.88, 0.10),
    "cyan": (0.10, 0.85, 0.90),
    "magenta": (0.88, 0.15, 0.85),
}
SIZES: dict[str, float] = {"small": 0.10, "large": 0.18}  # "radius" as a fraction of the image side
POSITIONS: dict[str, tuple[float, float]] = {  # (x, y) centre, y grows downwards
    "in the center": (0.5, 0.5),
    "at the top": (0.5, 0.27),
    "at the bottom": (0.5, 0.73),
    "on the left": (0.27, 0.5),
    "on the right": (0.73, 0.5),
}
RELATIONS: tuple[str, ...] = ("above", "below", "to the left of", "to the right of")
BACKGROUND: tuple[float, float, float] = (0.08, 0.08, 0.08)
JITTER = 0.03  # uniform jitter of object centres, fraction of the image side
HELD_OUT_PERCENT = 10

Split = Literal["train", "heldout", "all"]


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str


@dataclass(frozen=True)
class SceneSpec:
    """What a caption says: one object with a position, or two objects with a relation."""

    objects: tuple[SceneObject, ...]
    position: str | None = None
    relation: str | None = None


@dataclass(frozen=True)
class Scene:
    """A spec plus a concrete layout: object centres (x, y) in [0, 1], y downwards."""

    spec: SceneSpec
    centres: tuple[tuple[float, float], ...]


def caption(scene: Scene | SceneSpec) -> str:
    spec = scene.spec if isinstance(scene, Scene) else scene
    words = [f"a {o.size} {o.colour} {o.shape}" for o in spec.objects]
    if spec.relation is None:
        return f"{words[0]} {spec.position}"
    return f"{words[0]} {spec.relation} {words[1]}"


def _parse_object(words: list[str]) -> SceneObject:
    if len(words) != 4 or words[0] != "a" or words[1] not in SIZES or words[2] not in COLOURS or words[3] not in SHAPES:
        raise ValueError(f"not an object phrase: {' '.join(words)!r}")
    return SceneObject(shape=words[3], colour=words[2], size=words[1])


def parse_caption(text: str) -> SceneSpec:
    """Inverse of :func:`caption`; raises ``ValueError`` for text outside the grammar."""
    words = text.lower().split()
    rest = " ".join(words[4:])
    if rest in POSITIONS:
        return SceneSpec(objects=(_parse_object(words[:4]),), position=rest)
    for relation in RELATIONS:
        n = len(relation.split())
        if " ".join(words[4 : 4 + n]) == relation and len(words) == 8 + n:
            return SceneSpec(objects=(_parse_object(words[:4]), _parse_object(words[4 + n :])), relation=relation)
    raise ValueError(f"caption outside the tiny-shapes grammar: {text!r}")


def vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted (the tokenizer's word list)."""
    phrases = [*SHAPES, *COLOURS, *SIZES, *POSITIONS, *RELATIONS, "a"]
    return sorted({w for p in phrases for w in p.split()})


def is_held_out(text: str) -> bool:
    """Deterministic caption split: a stable hash sends about 10% of captions to held-out."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "little") % 100 < HELD_OUT_PERCENT


def _random_object(rng: np.random.Generator) -> SceneObject:
    return SceneObject(
        shape=SHAPES[rng.integers(len(SHAPES))],
        colour=list(COLOURS)[rng.integers(len(COLOURS))],
        size=list(SIZES)[rng.integers(len(SIZES))],
    )


def sample_spec(rng: np.random.Generator, split: Split = "train", p_two: float = 0.6) -> SceneSpec:
    """Uniform attributes, rejection-sampled into the requested caption split."""
    while True:
        if rng.random() < p_two:
            spec = SceneSpec(
                objects=(_random_object(rng), _random_object(rng)),
                relation=RELATIONS[rng.integers(len(RELATIONS))],
            )
        else:
            spec = SceneSpec(objects=(_random_object(rng),), position=list(POSITIONS)[rng.integers(len(POSITIONS))])
        if split == "all" or is_held_out(caption(spec)) == (split == "heldout"):
            return spec


def layout(spec: SceneSpec, rng: np.random.Generator) -> Scene:
    """Place the spec's objects: anchor points plus jitter, so positions are never ambiguous."""
    if spec.relation is None:
        anchors = [POSITIONS[spec.position]]
    else:
        a, b = {
            "above": ((0.5, 0.27), (0.5, 0.73)),
            "below": ((0.5, 0.73), (0.5, 0.27)),
            "to the left of": ((0.27, 0.5), (0.73, 0.5)),
            "to the right of": ((0.73, 0.5), (0.27, 0.5)),
        }[spec.relation]
        shift = rng.uniform(-0.12, 0.12)  # slide the pair along the axis perpendicular to the relation
        vertical = spec.relation in ("above", "below")
        anchors = [(x + shift, y) if vertical else (x, y + shift) for x, y in (a, b)]
    centres = tuple(
        (float(x + rng.uniform(-JITTER, JITTER)), float(y + rng.uniform(-JITTER, JITTER))) for x, y in anchors
    )
    return Scene(spec=spec, centres=centres)


def sample_scene(rng: np.random.Generator, split: Split = "train") -> Scene:
    return layout(sample_spec(rng, split), rng)


def _signed_distance(shape: str, dx: torch.Tensor, dy: torch.Tensor, r: float) -> torch.Tensor:
    """Signed distance (pixels, negative inside) to a shape of "radius" r centred at the origin."""
    if shape == "circle":
        return torch.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        return torch.maximum(dx.abs(), dy.abs()) - 0.85 * r
    # Upward equilateral triangle with circumradius 1.25 r: the max over its three edge half-planes.
    rc = 1.25 * r
    edges = [(0.0, 1.0), (math.sqrt(3) / 2, -0.5), (-math.sqrt(3) / 2, -0.5)]  # outward normals (y down)
    return torch.stack([nx * dx + ny * dy - rc / 2 for nx, ny in edges]).amax(0)


def render(scene: Scene, size: int = 64) -> torch.Tensor:
    """Float image [3, size, size] in [0, 1]; deterministic, anti-aliased over about one pixel."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    image = torch.tensor(BACKGROUND).view(3, 1, 1).expand(3, size, size).clone()
    for obj, (cx, cy) in zip(scene.spec.objects, scene.centres, strict=True):
        sdf = _signed_distance(obj.shape, xs - cx * size, ys - cy * size, SIZES[obj.size] * size)
        cover = (0.5 - sdf).clamp(0.0, 1.0)
        image = image * (1 - cover) + torch.tensor(COLOURS[obj.colour]).view(3, 1, 1) * cover
    return image


def render_batch(scenes: list[Scene], size: int = 64) -> torch.Tensor:
    return torch.stack([render(s, size) for s in scenes])


def all_captions(split: Split = "all") -> list[str]:
    """Every caption of the grammar in a fixed order, filtered by split."""
    objects = [SceneObject(s, c, z) for z in SIZES for c in COLOURS for s in SHAPES]
    specs = [SceneSpec((o,), position=p) for o in objects for p in POSITIONS]
    specs += [SceneSpec((a, b), relation=r) for a in objects for r in RELATIONS for b in objects]
    texts = [caption(s) for s in specs]
    return [t for t in texts if split == "all" or is_held_out(t) == (split == "heldout")]
