"""How far the automatic layout reaches: every transformer class in the installed diffusers that builds on the meta
device from its default config, laid out by ``ecad.adapters.discover_adapter``.

    python benchmarks/auto_layout.py [--save]

A layout is checked against the hand-written adapter where ecad has one (the same block lists, each with the same
components), and otherwise against the verdicts below, made by reading the class's blocks (a sample of the rest);
classes in neither are listed as unchecked. The result names every failure with its reason.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import diffusers  # noqa: E402
import torch  # noqa: E402
from common import emit, environment  # noqa: E402
from diffusers import ModelMixin  # noqa: E402

from ecad.adapters import ADAPTERS, UnsupportedModelError, discover_adapter  # noqa: E402

# Read by hand from diffusers 0.42.1's sources: (correct?, what the blocks hold / why not).
REVIEWED: dict[str, tuple[bool, str]] = {
    "AuraFlowTransformer2DModel": (
        True,
        "joint blocks attn/ff/ff_context, single blocks attn/ff: every attention and feed-forward",
    ),
    "CogVideoXTransformer3DModel": (True, "attn1 (joint text-video attention) and ff"),
    "MochiTransformer3DModel": (True, "attn1 (joint), ff, ff_context"),
    "LTXVideoTransformer3DModel": (True, "attn1, attn2 (cross), ff"),
    "Lumina2Transformer2DModel": (True, "noise/context refiners and layers, each attn and feed_forward"),
    "HunyuanVideoTransformer3DModel": (
        True,
        "double blocks attn/ff/ff_context, single blocks attn/proj_mlp/proj_out as the FLUX adapter",
    ),
    "ChromaTransformer2DModel": (
        True,
        "FLUX's layout (pruned modulation): attn/ff/ff_context and attn/proj_mlp/proj_out",
    ),
    "AllegroTransformer3DModel": (True, "attn1, attn2, ff"),
    "StableAudioDiTModel": (True, "attn1, attn2, ff"),
    "SkyReelsV2Transformer3DModel": (True, "Wan's block: attn1, attn2, ffn"),
    "WanVACETransformer3DModel": (True, "the 40 Wan blocks and the 8 VACE blocks, each attn1/attn2/ffn"),
    "Kandinsky6Transformer3DModel": (
        False,
        "the visual blocks nest a video and an audio decoder block; their "
        "self-attention and feed-forward sit one level deeper and are not found, only "
        "the two cross-modal attentions",
    ),
    "StableAudio3DiTModel": (True, "self_attn, cross_attn, ff"),
    "CogView4Transformer2DModel": (True, "attn1 (joint), ff"),
    "SanaVideoTransformer3DModel": (True, "attn1, attn2, ff (a GLU temporal conv, found by its name)"),
    "DiTTransformer2DModel": (True, "attn1, ff (class-conditional DiT, no cross-attention)"),
    "BriaTransformer2DModel": (True, "FLUX's layout"),
    "HunyuanImageTransformer2DModel": (True, "FLUX's layout"),
    "LongCatImageTransformer2DModel": (True, "FLUX's layout"),
    "CosmosTransformer3DModel": (True, "attn1, attn2, ff"),
    "Kandinsky5Transformer3DModel": (
        True,
        "text blocks self_attention/feed_forward, visual blocks also cross_attention",
    ),
    "JoyImageEditTransformer3DModel": (True, "Qwen-Image's layout: attn (joint), img_mlp, txt_mlp"),
    "NucleusMoEImageTransformer2DModel": (True, "attn, img_mlp (the text enters through a projection)"),
    "QwenImage21Transformer2DModel": (True, "attn, img_mlp"),
    "PRXTransformer2DModel": (
        False,
        "the MLP is three bare Linear children (gate_proj, up_proj, down_proj) inside "
        "the block, not a module of its own: only the attention is found",
    ),
    "ErnieImageTransformer2DModel": (True, "self_attention, mlp"),
    "Flux3Transformer2DModel": (True, "mode and single blocks, each attn and ff"),
    "GlmImageTransformer2DModel": (True, "attn1 (joint), ff"),
    "MiniMaxH3Transformer3DModel": (True, "attn, ff"),
    "Cosmos3OmniTransformer": (True, "self_attn and both MLP paths (mlp, mlp_moe_gen)"),
}


def transformer_classes() -> list[type]:
    module = diffusers.models.transformers
    names = sorted(n for n in dir(module) if not n.startswith("_"))
    found = [getattr(module, n) for n in names]
    return [c for c in found if inspect.isclass(c) and issubclass(c, ModelMixin)]


def existing(adapter, model) -> dict[str, list[str]]:
    """The hand-written adapter's components that exist in some block of ``model``, per block list."""
    found: dict[str, set[str]] = {}
    for _, _, block, group in adapter.blocks(model):
        found.setdefault(group.attr, set()).update(
            c for c in group.components if isinstance(getattr(block, c, None), torch.nn.Module)
        )
    return {attr: sorted(names) for attr, names in found.items()}


def check(cls: type) -> dict:
    row = {"class": cls.__name__}
    try:
        with torch.device("meta"):
            model = cls()
    except Exception as err:  # noqa: BLE001 - any failure means: not instantiable from its defaults
        return {**row, "status": "not built", "reason": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
    try:
        found = discover_adapter(model)
    except UnsupportedModelError as err:
        found, reason = None, str(err)
    layout = {g.attr: sorted(g.components) for g in found.groups} if found else {}
    row["layout"] = layout
    known = next((a for a in ADAPTERS if cls.__name__ in a.transformer_classes), None)
    if known is not None:
        expected = existing(known.bind(model), model)
        row["checked_against"] = "adapter"
        row["correct"] = layout == expected
        if not row["correct"]:
            extra, missing = sorted(set(layout) - set(expected)), sorted(set(expected) - set(layout))
            differ = sorted(a for a in set(layout) & set(expected) if layout[a] != expected[a])
            row["reason"] = (
                f"differs from the {known.family} adapter: block lists it leaves out {extra}, block lists "
                f"not found {missing}, other components in {differ} (adapter: {expected})"
            )
    elif cls.__name__ in REVIEWED:
        row["checked_against"] = "hand"
        row["correct"], row["reason"] = REVIEWED[cls.__name__]
    else:
        row["checked_against"] = None
        if found is None:
            row["reason"] = reason
    return {**row, "status": "built"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", action="store_true", help="append the result to benchmarks/results")
    args = parser.parse_args()
    rows = [check(cls) for cls in transformer_classes()]
    built = [r for r in rows if r["status"] == "built"]
    checked = [r for r in built if r["checked_against"]]
    correct = [r for r in checked if r["correct"]]
    result = {
        "environment": environment(),
        "diffusers": diffusers.__version__,
        "classes": len(rows),
        "built_on_meta": len(built),
        "laid_out": sum(bool(r["layout"]) for r in built),
        "checked": len(checked),
        "correct": len(correct),
        "summary": f"{len(correct)} of {len(checked)} checked diffusers transformer classes laid out correctly "
        f"({len(built)} of {len(rows)} build on the meta device from their default config; "
        f"{len(built) - len(checked)} unchecked)",
        "failures": [
            {"class": r["class"], "reason": r["reason"], "layout": r["layout"]} for r in checked if not r["correct"]
        ],
        "unchecked": [
            {"class": r["class"], "layout": r["layout"], **({"reason": r["reason"]} if "reason" in r else {})}
            for r in built
            if not r["checked_against"]
        ],
        "not_built": [{"class": r["class"], "reason": r["reason"]} for r in rows if r["status"] != "built"],
    }
    emit("auto_layout", result, args.save)


if __name__ == "__main__":
    main()
