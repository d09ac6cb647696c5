"""ImageReward: the original ``image-reward`` package and ecad's port give the same scores on the same weights.

The original runs in a throwaway environment of its own (it cannot live beside ecad: it needs timm 0.6.13,
torchvision, fairscale, an older transformers and a ``clip`` module), set up once like this (x86_64; torch 2.14.1
and torchvision 0.29.1 lie on this machine's disk):

    python3 -m venv /work/tmp/imagereward-venv && . /work/tmp/imagereward-venv/bin/activate
    pip install torch==2.14.1 torchvision==0.29.1
    pip install --no-deps image-reward==1.5 timm==0.6.13
    pip install transformers==4.40.2 huggingface_hub==0.24.7 diffusers==0.27.2 accelerate datasets scipy
    pip install --no-deps --no-build-isolation fairscale==0.4.13
    mkdir -p /work/tmp/ir-shim/clip && touch /work/tmp/ir-shim/clip/__init__.py   # imported, never used to score

Then, from the repository root in ecad's environment:

    PYTHONPATH=src python scripts/image_reward_equivalence.py --original-python /work/tmp/imagereward-venv/bin/python \
        --original-path /work/tmp/ir-shim --real-vocab PATH/TO/bert-base-uncased/vocab.txt

1. The original builds its model (``ImageReward.ImageReward.ImageReward`` from ``med_config.json``) and reports
   its state dict: every key, shape and dtype, i.e. the shape of the published ``ImageReward.pt``.
2. That layout is filled with seeded random tensors (``metric_fixtures.seeded_state_dict``) and written as
   ``ImageReward.pt``, beside ``med_config.json``, seeded non-square PNG images and a BERT vocabulary.
3. The original loads it with its own ``ImageReward.load`` and scores each prompt's images (``model.score``, one
   image per forward pass).
4. ecad scores the same files through ``get_metric("image-reward")``: ``hf_hub_download`` from a local hub
   cache, the strict key mapping, batched forward passes.
5. Written to ``benchmarks/results/image_reward_equivalence.json``: the layout, seeds, prompts, both score lists,
   their largest absolute difference, and the token ids of both tokenizers (also on the real bert-base-uncased
   vocabulary with ``--real-vocab``). ``tests/test_image_reward.py`` rebuilds the same inputs from this file and
   checks ecad's scores against the original's recorded ones.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from metric_fixtures import (
    bert_vocab,
    equivalence_arguments,
    layout_of,
    put_in_hub_cache,
    run_original_side,
    seeded_images,
    seeded_state_dict,
)
from PIL import Image

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "image_reward_equivalence.json"
# THUDM/ImageReward's med_config.json (BLIP's BERT-base "med" with cross-attention; the vocabulary has BLIP's
# [DEC] and [ENC] added to bert-base-uncased's 30,522 tokens).
MED_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 30524,
    "encoder_width": 768,
    "add_cross_attention": True,
}
PROMPTS = ["a red fox in the snow", "an astronaut riding a horse on the moon, digital art"]
IMAGES_PER_PROMPT = 3
IMAGE_HEIGHT, IMAGE_WIDTH = 250, 331  # not square: exercises the resize and the centre crop's rounding
WEIGHT_SEED, IMAGE_SEED = 0, 1
VOCAB_WORDS = [
    "a",
    "red",
    "fox",
    "in",
    "the",
    "snow",
    "an",
    "astro",
    "##naut",
    "riding",
    "horse",
    "on",
    "moon",
    ",",
    "digital",
    "art",
]
# Tokenizer check: casing, accents, punctuation, wordpieces, the special tokens BLIP adds, truncation past 35.
TOKEN_PROMPTS = [
    *PROMPTS,
    "A Photo of a CAFÉ at night!",
    "[DEC] an [ENC] astronaut",
    "naïve résumé-writing, 3.5x zoom: ok?",
    " ".join(["a very long prompt"] * 12),
]


def vocab_dir(root: Path, vocab: list[str] | Path) -> Path:
    """A local ``bert-base-uncased`` folder: the original's ``BertTokenizer.from_pretrained('bert-base-uncased')``
    loads it when run from ``root``'s parent."""
    root.mkdir(parents=True, exist_ok=True)
    text = vocab.read_text() if isinstance(vocab, Path) else "\n".join(vocab) + "\n"
    (root / "vocab.txt").write_text(text)
    (root / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return root


def image_files(work: Path) -> list[Path]:
    return sorted((work / "images").glob("*.png"))


# ---- the original side (runs in the throwaway environment) ----


def original_layout(work: Path) -> None:
    from ImageReward.ImageReward import ImageReward

    model = ImageReward(med_config=str(work / "med_config.json"))
    (work / "layout.json").write_text(json.dumps(layout_of(model.state_dict())))


def original_scores(work: Path) -> None:
    import ImageReward as RM
    import torch
    import transformers
    from ImageReward.models.BLIP.blip import init_tokenizer

    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    started = time.perf_counter()
    model = RM.load(str(work / "ImageReward.pt"), device="cpu", med_config=str(work / "med_config.json"))
    files = image_files(work)
    scores = []
    for p, prompt in enumerate(PROMPTS):
        rows = files[p * IMAGES_PER_PROMPT : (p + 1) * IMAGES_PER_PROMPT]
        scores += model.score(prompt, [Image.open(f) for f in rows])
    tokens = {
        "synthetic": [
            model.blip.tokenizer(t, padding="max_length", truncation=True, max_length=35).input_ids
            for t in TOKEN_PROMPTS
        ]
    }
    if (work / "real" / "bert-base-uncased").is_dir():
        os.chdir(work / "real")
        real = init_tokenizer()
        tokens["real"] = [
            real(t, padding="max_length", truncation=True, max_length=35).input_ids for t in TOKEN_PROMPTS
        ]
    (work / "original.json").write_text(
        json.dumps(
            {
                "scores": scores,
                "tokens": tokens,
                "seconds": time.perf_counter() - started,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "image_reward": "1.5",
            }
        )
    )


# ---- ecad's side ----


def ecad_tokens(vocab_root: Path) -> list[list[int]]:
    from ecad.metrics.image_reward_model import MAX_TEXT_LENGTH, load_tokenizer

    tokenizer = load_tokenizer(str(vocab_root))
    return [
        tokenizer(t, padding="max_length", truncation=True, max_length=MAX_TEXT_LENGTH).input_ids for t in TOKEN_PROMPTS
    ]


def main() -> None:
    parser = equivalence_arguments(__doc__.split("\n\n")[0], ["layout", "original"], RESULTS)
    parser.add_argument("--real-vocab", type=Path, help="bert-base-uncased's vocab.txt, to compare tokenizers on it")
    args = parser.parse_args()
    if args.side:
        return {"layout": original_layout, "original": original_scores}[args.side](args.work)
    if not args.original_python:
        parser.error("--original-python is required")

    import numpy as np
    import transformers

    import ecad
    from ecad.generation import Generated
    from ecad.metrics import get_metric
    from ecad.metrics.image_reward_model import REPO, TOKENIZER

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "med_config.json").write_text(json.dumps(MED_CONFIG))
        vocab = bert_vocab(VOCAB_WORDS)
        vocab_dir(work / "bert-base-uncased", vocab)
        if args.real_vocab:
            vocab_dir(work / "real" / "bert-base-uncased", args.real_vocab)
        run_original_side(__file__, args, "layout", work)
        layout = json.loads((work / "layout.json").read_text())
        torch.save(seeded_state_dict(layout, WEIGHT_SEED), work / "ImageReward.pt")
        (work / "images").mkdir()
        images = seeded_images(len(PROMPTS) * IMAGES_PER_PROMPT, IMAGE_HEIGHT, IMAGE_WIDTH, IMAGE_SEED)
        for i, image in enumerate(images):
            image.save(work / "images" / f"{i:02d}.png")
        run_original_side(__file__, args, "original", work)
        original = json.loads((work / "original.json").read_text())

        cache = work / "hub"
        put_in_hub_cache(
            cache, REPO, {"ImageReward.pt": work / "ImageReward.pt", "med_config.json": json.dumps(MED_CONFIG)}
        )
        put_in_hub_cache(
            cache,
            TOKENIZER,
            {"vocab.txt": "\n".join(vocab) + "\n", "tokenizer_config.json": json.dumps({"do_lower_case": True})},
        )
        started = time.perf_counter()
        metric = get_metric("image-reward", cache_dir=cache, local_files_only=True, device="cpu", batch_size=4)
        pixels = torch.stack(
            [
                torch.from_numpy(np.asarray(Image.open(f), dtype=np.float32) / 255).permute(2, 0, 1)
                for f in image_files(work)
            ]
        )
        prompts = [p for p in PROMPTS for _ in range(IMAGES_PER_PROMPT)]
        scores = metric.score(pixels, prompts).tolist()
        quality = metric(Generated(pixels, torch.zeros(len(prompts)), prompts))["quality"]
        seconds = time.perf_counter() - started
        tokens = {"synthetic": ecad_tokens(work / "bert-base-uncased")}
        if args.real_vocab:
            tokens["real"] = ecad_tokens(work / "real" / "bert-base-uncased")

    difference = max(abs(a - b) for a, b in zip(original["scores"], scores, strict=True))
    result = {
        "what": "ImageReward scores of the original image-reward 1.5 and of ecad's port, same random weights "
        "(checkpoint-shaped, from the original's own state dict), same prompts and PNG images",
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "weight_seed": WEIGHT_SEED,
        "image_seed": IMAGE_SEED,
        "image_size": [IMAGE_HEIGHT, IMAGE_WIDTH],
        "prompts": PROMPTS,
        "images_per_prompt": IMAGES_PER_PROMPT,
        "vocab_words": VOCAB_WORDS,
        "med_config": MED_CONFIG,
        "original": {k: original[k] for k in ("scores", "seconds", "torch", "transformers", "image_reward")},
        "ecad": {
            "scores": scores,
            "quality": quality,
            "seconds": seconds,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "ecad": ecad.__version__,
            "batch_size": 4,
        },
        "max_abs_difference": difference,
        "score_spread": float(np.std(original["scores"])),
        "tokens_equal": {name: original["tokens"][name] == ids for name, ids in tokens.items()},
        "token_prompts": TOKEN_PROMPTS,
        "original_tokens": original["tokens"]["synthetic"],
        "checkpoint_layout": layout,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("max_abs_difference", "score_spread", "tokens_equal")}))
    print("original:", original["scores"], "\necad:    ", scores, file=sys.stderr)


if __name__ == "__main__":
    main()
