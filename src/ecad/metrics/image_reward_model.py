"""ImageReward-v1.0 (Xu et al., NeurIPS 2023) on transformers' own BLIP modules, loading the official checkpoint.

ImageReward is BLIP: a ViT-L/16 image encoder at 224 px and a BERT-base text encoder whose every layer
cross-attends to the image tokens ("med"), then an MLP on the text encoder's first ([CLS]) output, normalised by
the mean and standard deviation of the rewards seen in training. transformers' ``BlipVisionModel`` and
``BlipTextModel`` are ports of the same BLIP code, so the official ``ImageReward.pt`` maps onto them key by key
(:func:`checkpoint_to_port`) and nothing of the `image-reward` package (timm, fairscale, clip, torchvision, an old
transformers) is needed. ``scripts/image_reward_equivalence.py`` shows that the original and this port give the
same scores on the same random weights, prompts and images.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .weights import hub_file, load_exact

REPO = "THUDM/ImageReward"
CHECKPOINT = "ImageReward.pt"
MED_CONFIG = "med_config.json"
TOKENIZER = "bert-base-uncased"
IMAGE_SIZE = 224
MAX_TEXT_LENGTH = 35
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
REWARD_MEAN = 0.16717362830052426  # ImageReward.mean / .std in the original: the training rewards' statistics
REWARD_STD = 1.0333394966054072

# Checkpoint key -> port key, in order; the first pattern that matches renames the key.
_RENAMES = (
    (r"blip\.visual_encoder\.cls_token", "vision.embeddings.class_embedding"),
    (r"blip\.visual_encoder\.pos_embed", "vision.embeddings.position_embedding"),
    (r"blip\.visual_encoder\.patch_embed\.proj\.", "vision.embeddings.patch_embedding."),
    (r"blip\.visual_encoder\.blocks\.(\d+)\.norm(\d)\.", r"vision.encoder.layers.\1.layer_norm\2."),
    (r"blip\.visual_encoder\.blocks\.(\d+)\.attn\.qkv\.", r"vision.encoder.layers.\1.self_attn.qkv."),
    (r"blip\.visual_encoder\.blocks\.(\d+)\.attn\.proj\.", r"vision.encoder.layers.\1.self_attn.projection."),
    (r"blip\.visual_encoder\.blocks\.(\d+)\.mlp\.", r"vision.encoder.layers.\1.mlp."),
    (r"blip\.visual_encoder\.norm\.", "vision.post_layernorm."),
    (r"blip\.text_encoder\.", "text."),
    (r"mlp\.layers\.", "head."),
)
# In the checkpoint but not part of the reward: BLIP's contrastive projections (the original builds them and never
# calls them when scoring).
UNUSED_PREFIXES = ("blip.vision_proj.", "blip.text_proj.")
# A constant buffer the checkpoint stores and transformers recomputes; checked, then set on the port.
POSITION_IDS = "blip.text_encoder.embeddings.position_ids"


def vision_config() -> Any:
    """The original's ``create_vit("large", 224)``: ViT-L/16, LayerNorm eps 1e-6, exact GELU."""
    from transformers import BlipVisionConfig

    return BlipVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=IMAGE_SIZE,
        patch_size=16,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
        attention_dropout=0.0,
    )


def text_config(med: Mapping[str, Any], encoder_width: int) -> Any:
    """The text encoder of ``med_config.json``; cross-attention reads ``encoder_width``-wide image tokens (the
    original overwrites the file's ``encoder_width`` with the ViT's width the same way)."""
    from transformers import BlipTextConfig

    if not med.get("add_cross_attention", False):
        raise ValueError(
            "med_config.json must have add_cross_attention: true (ImageReward's text encoder "
            "cross-attends to the image)."
        )
    if med.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"unsupported position_embedding_type {med['position_embedding_type']!r} in med_config.json.")
    return BlipTextConfig(
        vocab_size=med["vocab_size"],
        hidden_size=med["hidden_size"],
        intermediate_size=med["intermediate_size"],
        num_hidden_layers=med["num_hidden_layers"],
        num_attention_heads=med["num_attention_heads"],
        max_position_embeddings=med["max_position_embeddings"],
        layer_norm_eps=med["layer_norm_eps"],
        hidden_act=med["hidden_act"],
        pad_token_id=med.get("pad_token_id", 0),
        encoder_hidden_size=encoder_width,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        is_decoder=True,  # gives every layer its cross-attention; the forward pass stays bidirectional
    )


class ImageReward(nn.Module):
    """BLIP image and text encoders plus the reward head; ``forward`` returns one normalised reward per row."""

    def __init__(self, med: Mapping[str, Any]) -> None:
        from transformers import BlipTextModel, BlipVisionModel

        super().__init__()
        self.vision = BlipVisionModel(vision_config())
        self.text = BlipTextModel(text_config(med, self.vision.config.hidden_size), add_pooling_layer=False)
        widths = (med["hidden_size"], 1024, 128, 64, 16, 1)
        # The original's MLP: five Linear layers, no activation in between, dropout at 1, 3, 5 (idle when scoring).
        index = (0, 2, 4, 6, 7)
        self.head = nn.Sequential(
            OrderedDict((str(i), nn.Linear(a, b)) for i, a, b in zip(index, widths[:-1], widths[1:], strict=True))
        )

    def forward(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        image = self.vision(pixel_values=pixel_values).last_hidden_state
        text = self.text(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image)
        features = text.last_hidden_state[:, 0].to(self.head[0].weight.dtype)
        return (self.head(features).squeeze(-1) - REWARD_MEAN) / REWARD_STD


def _port_key(key: str) -> str:
    for pattern, replacement in _RENAMES:
        renamed, count = re.subn(f"^{pattern}", replacement, key)
        if count:
            return renamed
    return key  # unknown: load_exact names it


def checkpoint_to_port(checkpoint: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The checkpoint's tensors under the port's names, and the text position ids.

    Every key is accounted for: renamed, one of the unused projections, or the position ids (which must be
    0, 1, 2, ...). Anything else stays under its own name, so that loading names it as not used.
    """
    kept = [k for k in checkpoint if k != POSITION_IDS and not k.startswith(UNUSED_PREFIXES)]
    state = {_port_key(k): checkpoint[k] for k in kept}
    if len(state) != len(kept):
        raise ValueError("two keys of the ImageReward checkpoint map to the same tensor of the port.")
    if POSITION_IDS not in checkpoint:
        raise ValueError(f"the ImageReward checkpoint has no {POSITION_IDS}.")
    position_ids = checkpoint[POSITION_IDS]
    if not torch.equal(position_ids, torch.arange(position_ids.shape[-1]).expand_as(position_ids)):
        raise ValueError(f"{POSITION_IDS} in the ImageReward checkpoint is not 0, 1, 2, ...")
    return state, position_ids


def build_from_checkpoint(checkpoint: Mapping[str, torch.Tensor], med: Mapping[str, Any]) -> ImageReward:
    """The port with the checkpoint's tensors (built on the meta device: no random init, no second copy)."""
    with torch.device("meta"):
        model = ImageReward(med)
    state, position_ids = checkpoint_to_port(checkpoint)
    model.text.embeddings.position_ids = position_ids.clone()
    load_exact(model, state, "the ImageReward checkpoint", assign=True)
    return model.eval()


def load_tokenizer(name: str = TOKENIZER, **hub: Any) -> Any:
    """bert-base-uncased with the two special tokens BLIP adds ([DEC], [ENC]: the 30,524 ids of its embedding)."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(name, **hub)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def load_image_reward(
    repo: str = REPO, tokenizer: str = TOKENIZER, cache_dir: str | Path | None = None, local_files_only: bool = False
) -> tuple[ImageReward, Any]:
    """The official ImageReward-v1.0 and its tokenizer from the hub (1.8 GB on first use, then the hub cache)."""
    hub = {"cache_dir": cache_dir, "local_files_only": local_files_only}
    med = json.loads(hub_file(repo, MED_CONFIG, **hub).read_text())
    checkpoint = torch.load(hub_file(repo, CHECKPOINT, **hub), map_location="cpu", weights_only=True, mmap=True)
    return build_from_checkpoint(checkpoint, med), load_tokenizer(tokenizer, **hub)


def preprocess(images: Sequence[Image.Image]) -> torch.Tensor:
    """The original's torchvision transform on PIL images, without torchvision: shorter side to 224 (bicubic),
    centre crop 224 (offsets rounded as torchvision rounds them), RGB, [0, 1], CLIP mean/std."""
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    batch = []
    for image in images:
        width, height = image.size
        short, long = min(width, height), max(width, height)
        size = (IMAGE_SIZE, int(IMAGE_SIZE * long / short))
        resized = image.resize(size if width <= height else size[::-1], Image.Resampling.BICUBIC)
        top = int(round((resized.height - IMAGE_SIZE) / 2.0))
        left = int(round((resized.width - IMAGE_SIZE) / 2.0))
        crop = resized.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE)).convert("RGB")
        pixels = torch.from_numpy(np.array(crop, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
        batch.append((pixels - mean) / std)
    return torch.stack(batch)
