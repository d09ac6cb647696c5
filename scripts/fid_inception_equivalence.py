"""FID: ecad's Inception port gives torchmetrics + torch-fidelity's features and FID on the same weights.

torchmetrics' ``FrechetInceptionDistance(feature=2048)`` runs torch-fidelity's ``FeatureExtractorInceptionV3``,
which imports torchvision: it runs in the throwaway environment of ``scripts/image_reward_equivalence.py``
(torch 2.14.1, torchvision 0.29.1, ``pip install torch-fidelity torchmetrics``). From the repository root, in
ecad's environment:

    PYTHONPATH=src python scripts/fid_inception_equivalence.py --original-python /work/tmp/imagereward-venv/bin/python

1. The state-dict layout of torch-fidelity's weights file (every conv and BatchNorm tensor and the 1008-class
   ``fc``; no BatchNorm step counters, as in the published file) is filled with seeded random tensors.
2. torchmetrics loads that file into torch-fidelity's network (``feature_extractor_weights_path``: a strict
   ``load_state_dict``, so names and shapes must be torch-fidelity's) and computes the features of two seeded sets
   of PNG images and their FID.
3. ecad computes the same through ``get_metric("fid")``: the file found in a torch.hub cache (``TORCH_HOME``) by
   the real ``load_state_dict_from_url`` call, the port, torchmetrics' Fréchet distance.
4. Written to ``benchmarks/results/fid_inception_equivalence.json``: seeds, both FIDs, the largest feature
   difference, and the first features of each image (``tests/test_fid.py`` checks ecad against them).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from metric_fixtures import equivalence_arguments, layout_of, run_original_side, seeded_images, seeded_state_dict
from PIL import Image

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "fid_inception_equivalence.json"
WEIGHT_SEED, REAL_SEED, FAKE_SEED = 0, 1, 2
IMAGES, HEIGHT, WIDTH = 6, 96, 128
RECORDED_FEATURES = 16  # per image, in the results


def images_of(folder: Path) -> torch.Tensor:
    return torch.stack(
        [
            torch.from_numpy(np.asarray(Image.open(f), dtype=np.float32) / 255).permute(2, 0, 1)
            for f in sorted(folder.glob("*.png"))
        ]
    )


def original(work: Path) -> None:
    """torchmetrics' FID with torch-fidelity's Inception (runs in the throwaway environment)."""
    import torch_fidelity
    import torchmetrics
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    fid = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(work / "w.pth"))
    real, fake = images_of(work / "real"), images_of(work / "fake")
    with torch.inference_mode():
        fid.update(real, real=True)
        fid.update(fake, real=False)
        features = fid.inception((real * 255).byte())
    torch.save({"features": features}, work / "original.pt")
    (work / "original.json").write_text(
        json.dumps(
            {
                "fid": float(fid.compute()),
                "torch": torch.__version__,
                "torchmetrics": torchmetrics.__version__,
                "torch_fidelity": torch_fidelity.__version__,
            }
        )
    )


def fidelity_layout() -> list:
    """torch-fidelity's file: the port's tensors without BatchNorm's step counters, plus the classifier."""
    from ecad.metrics.inception import FEATURES, FidInceptionV3

    tensors = {k: v for k, v in FidInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    tensors |= {"fc.weight": torch.empty(1008, FEATURES), "fc.bias": torch.empty(1008)}
    return layout_of(tensors)


def main() -> None:
    parser = equivalence_arguments(__doc__.split("\n\n")[0], ["original"], RESULTS)
    args = parser.parse_args()
    if args.side:
        return original(args.work)
    if not args.original_python:
        parser.error("--original-python is required")

    import torchmetrics

    from ecad.generation import Generated
    from ecad.metrics import get_metric
    from ecad.metrics.inception import WEIGHTS_URL

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        layout = fidelity_layout()
        torch.save(seeded_state_dict(layout, WEIGHT_SEED), work / "w.pth")
        for name, seed in (("real", REAL_SEED), ("fake", FAKE_SEED)):
            (work / name).mkdir()
            for i, image in enumerate(seeded_images(IMAGES, HEIGHT, WIDTH, seed)):
                image.save(work / name / f"{i:02d}.png")
        run_original_side(__file__, args, "original", work)
        theirs = json.loads((work / "original.json").read_text())
        their_features = torch.load(work / "original.pt", weights_only=True)["features"]

        hub = work / "torch"  # the torch.hub cache the real download looks in first
        (hub / "hub" / "checkpoints").mkdir(parents=True)
        (hub / "hub" / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[1]).symlink_to(work / "w.pth")
        os.environ["TORCH_HOME"] = str(hub)
        started = time.perf_counter()
        metric = get_metric("fid", device="cpu", batch_size=4)
        real, fake = images_of(work / "real"), images_of(work / "fake")
        metric.prepare(Generated(real, None, [""] * IMAGES))
        ours = metric(Generated(fake, None, [""] * IMAGES))["fid"]
        with torch.inference_mode():
            features = metric.fid.inception(real)
        seconds = time.perf_counter() - started

    result = {
        "what": "FID Inception-v3 features and FID of torchmetrics + torch-fidelity and of ecad's port, same random "
        "weights in torch-fidelity's file layout, same PNG images",
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "weight_seed": WEIGHT_SEED,
        "real_seed": REAL_SEED,
        "fake_seed": FAKE_SEED,
        "images": IMAGES,
        "image_size": [HEIGHT, WIDTH],
        "original": {**theirs, "features": their_features[:, :RECORDED_FEATURES].tolist()},
        "ecad": {
            "fid": ours,
            "torch": torch.__version__,
            "torchmetrics": torchmetrics.__version__,
            "seconds": seconds,
            "batch_size": 4,
        },
        "fid_relative_difference": abs(ours - theirs["fid"]) / abs(theirs["fid"]),
        "max_abs_feature_difference": float((features - their_features).abs().max()),
        "feature_scale": float(their_features.abs().mean()),
        "weights_layout": layout,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        json.dumps({k: result[k] for k in ("fid_relative_difference", "max_abs_feature_difference", "feature_scale")}),
        theirs["fid"],
        ours,
    )


if __name__ == "__main__":
    main()
