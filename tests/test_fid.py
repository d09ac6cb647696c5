"""FID's real Inception path: ecad's port of torch-fidelity's FID Inception-v3, its weights found by the real
torch.hub download in a local torch.hub cache (random weights in the published file's layout), and torchmetrics'
Fréchet distance, against the features and FID torchmetrics + torch-fidelity gave for the same weights and images
(recorded by scripts/fid_inception_equivalence.py)."""

import numpy as np
import pytest
import torch
from metric_support import recorded, seeded_images, seeded_state_dict, threads

from ecad.generation import Generated
from ecad.metrics import get_metric
from ecad.metrics.inception import WEIGHTS_URL, load_fid_inception

RESULT = recorded("fid_inception_equivalence.json")


@pytest.fixture
def torch_hub(tmp_path, monkeypatch):
    """The published weights file's name in the torch.hub cache, holding seeded random weights in its layout."""
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    weights = seeded_state_dict(RESULT["weights_layout"], RESULT["weight_seed"])
    torch.save(weights, checkpoints / WEIGHTS_URL.rsplit("/", 1)[1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return checkpoints / WEIGHTS_URL.rsplit("/", 1)[1], weights


def image_set(seed):
    height, width = RESULT["image_size"]
    arrays = [np.asarray(im, dtype=np.float32) / 255 for im in seeded_images(RESULT["images"], height, width, seed)]
    return Generated(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2), None, [""] * RESULT["images"])


@pytest.mark.slow
def test_fid_through_the_inception_port_gives_torch_fidelitys_features_and_fid(torch_hub):
    metric = get_metric("fid", device="cpu", batch_size=4)
    real, fake = image_set(RESULT["real_seed"]), image_set(RESULT["fake_seed"])
    seen = []
    with threads(2):
        metric.inception().register_forward_hook(lambda module, args, output: seen.append(output))
        metric.prepare(real)
        scores = metric(fake)
    features = torch.cat(seen[:2])  # the real images' features: batches of 4 and 2
    theirs = torch.tensor(RESULT["original"]["features"])
    assert features.shape == (RESULT["images"], 2048)
    assert (features[:, : theirs.shape[1]] - theirs).abs().max() < 1e-4 * RESULT["feature_scale"] + 1e-6
    assert scores["fid"] == pytest.approx(RESULT["original"]["fid"], rel=1e-3)
    assert scores["quality"] == -scores["fid"] and scores["fid"] > 0


def test_the_weights_load_strictly(torch_hub):
    path, weights = torch_hub
    model = load_fid_inception()
    assert torch.equal(model.Mixed_7c.branch3x3dbl_3b.conv.weight, weights["Mixed_7c.branch3x3dbl_3b.conv.weight"])
    assert torch.equal(model.Conv2d_1a_3x3.bn.running_var, weights["Conv2d_1a_3x3.bn.running_var"])
    del weights["Mixed_6b.branch7x7_2.bn.running_mean"]
    torch.save(weights, path)
    with pytest.raises(ValueError, match=r"1 tensors missing \['Mixed_6b.branch7x7_2.bn.running_mean'\]"):
        load_fid_inception()
