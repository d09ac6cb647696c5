"""ImageReward: ecad's port at full size (BLIP ViT-L/16 + BERT-base with cross-attention, 447M random weights in the
published checkpoint's layout), loaded by the real hub loading code from a local hub cache and scored through the
``image-reward`` metric, against the scores the original ``image-reward`` package gave for the same weights,
prompts and images (recorded by scripts/image_reward_equivalence.py)."""

import json

import numpy as np
import pytest
import torch
from metric_support import bert_vocab, put_in_hub_cache, recorded, seeded_images, seeded_state_dict, threads

from ecad.generation import Generated
from ecad.metrics import get_metric
from ecad.metrics.image_reward_model import POSITION_IDS, REPO, TOKENIZER, build_from_checkpoint, load_tokenizer

RESULT = recorded("image_reward_equivalence.json")
TOLERANCE = 1e-4  # the original ran one image per call on torch 2.14.1; differences seen: see max_abs_difference


def tokenizer_files():
    return {
        "vocab.txt": "\n".join(bert_vocab(RESULT["vocab_words"])) + "\n",
        "tokenizer_config.json": json.dumps({"do_lower_case": True}),
    }


@pytest.fixture
def hub_cache(tmp_path):
    """bert-base-uncased (with the script's vocabulary) as the hub cache holds it after a download."""
    cache = tmp_path / "hub"
    put_in_hub_cache(cache, TOKENIZER, tokenizer_files())
    return cache


@pytest.fixture
def checkpoint_in_hub_cache(hub_cache, tmp_path):
    """THUDM/ImageReward too, its ImageReward.pt holding the script's seeded weights (1.8 GB on disk)."""
    checkpoint = tmp_path / "ImageReward.pt"
    torch.save(seeded_state_dict(RESULT["checkpoint_layout"], RESULT["weight_seed"]), checkpoint)
    put_in_hub_cache(
        hub_cache, REPO, {"ImageReward.pt": checkpoint, "med_config.json": json.dumps(RESULT["med_config"])}
    )
    yield hub_cache
    checkpoint.unlink()  # pytest keeps the temporary folders of the last runs


def recorded_inputs():
    height, width = RESULT["image_size"]
    count = len(RESULT["prompts"]) * RESULT["images_per_prompt"]
    pil = seeded_images(count, height, width, RESULT["image_seed"])
    images = [np.asarray(image, dtype=np.float32) / 255 for image in pil]
    prompts = [p for p in RESULT["prompts"] for _ in range(RESULT["images_per_prompt"])]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), prompts


@pytest.mark.slow
def test_full_size_port_gives_the_original_packages_scores(checkpoint_in_hub_cache):
    metric = get_metric(
        "image-reward", cache_dir=checkpoint_in_hub_cache, local_files_only=True, device="cpu", batch_size=4
    )
    images, prompts = recorded_inputs()
    with threads(2):
        metric._load()
        calls = []
        metric.model.vision.register_forward_hook(lambda *_: calls.append(1))
        scores = metric.score(images, prompts)
        first = metric(Generated(images[:1], None, prompts[:1]))
    assert len(calls) == 3  # 6 images in batches of 4, then 1
    assert sum(p.numel() for p in metric.model.parameters()) > 440_000_000
    original = torch.tensor(RESULT["original"]["scores"])
    assert original.std() > 0.1  # the random weights give scores that differ between images and prompts
    assert (scores - original).abs().max() < TOLERANCE
    assert first["quality"] == first["image_reward"] == pytest.approx(scores[0].item(), abs=1e-5)


def test_tokenizer_gives_the_original_token_ids(hub_cache):
    tokenizer = load_tokenizer(TOKENIZER, cache_dir=hub_cache, local_files_only=True)
    ids = [
        tokenizer(text, padding="max_length", truncation=True, max_length=35).input_ids
        for text in RESULT["token_prompts"]
    ]
    assert ids == RESULT["original_tokens"]
    assert RESULT["tokens_equal"].get("real", True)  # on the real bert-base-uncased vocabulary, when it was checked


def meta_checkpoint():
    """The published checkpoint's keys and shapes with no memory behind them (loading checks come first)."""
    checkpoint = {k: torch.empty(shape, device="meta") for k, shape, _ in RESULT["checkpoint_layout"]}
    checkpoint[POSITION_IDS] = torch.arange(512).expand(1, -1)
    return checkpoint


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.pop("blip.text_encoder.encoder.layer.3.crossattention.self.key.weight"), "1 tensors missing"),
        (lambda c: c.update({"blip.itm_head.weight": torch.empty(2, 768, device="meta")}), "itm_head"),
        (lambda c: c.update({POSITION_IDS: torch.zeros(1, 512, dtype=torch.long)}), "not 0, 1, 2"),
    ],
)
def test_a_checkpoint_that_does_not_map_exactly_is_refused(change, message):
    checkpoint = meta_checkpoint()
    change(checkpoint)
    with pytest.raises(ValueError, match=message):
        build_from_checkpoint(checkpoint, RESULT["med_config"])


def test_missing_weights_offline_say_how_to_get_them(tmp_path):
    metric = get_metric("image-reward", cache_dir=tmp_path, local_files_only=True, device="cpu")
    with pytest.raises(OSError, match=r"hf download THUDM/ImageReward med_config.json"):
        metric(Generated(torch.rand(1, 3, 32, 32), None, ["a fox"]))
