"""Getting a metric's published weights: the hub's or torch.hub's own download and cache, and strict loading.

Every metric model loads its weights strictly: a tensor the model lacks or a model tensor the file lacks is an
error that names it, so a checkpoint that maps wrongly can never give silently random scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import chain
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

Loaded = TypeVar("Loaded")


def from_hub(repo: str, load: Callable[[], Loaded], filename: str = "") -> Loaded:
    """``load()``, a download or ``from_pretrained`` of ``repo``; if the files cannot be had (not cached and no
    network, unknown repository or file, HTTP errors), one line that says how to get them."""
    try:
        return load()
    except OSError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        what = f"{filename} from the hub repository {repo}" if filename else f"the hub repository {repo}"
        command = f"hf download {repo} {filename}".strip()
        raise OSError(
            f"cannot get {what} ({reason}). On a machine with network access run `{command}` and copy "
            "the hub cache (~/.cache/huggingface/hub, or HF_HUB_CACHE) here."
        ) from None


def hub_file(repo: str, filename: str, cache_dir: str | Path | None = None, local_files_only: bool = False) -> Path:
    """``filename`` of the hub repository ``repo`` through ``hf_hub_download`` (downloaded once, then cached)."""
    from huggingface_hub import hf_hub_download

    return Path(
        from_hub(
            repo,
            lambda: hf_hub_download(repo, filename, cache_dir=cache_dir, local_files_only=local_files_only),
            filename,
        )
    )


def torch_hub_weights(url: str) -> dict[str, torch.Tensor]:
    """A state dict published at ``url``, through torch.hub's download and cache (``torch.hub.get_dir()``)."""
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, weights_only=True)
    except OSError as err:  # URLError and HTTPError are OSErrors
        raise OSError(
            f"cannot download {url} ({str(err).splitlines()[0]}); put the file into "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'} on this machine."
        ) from None


def load_exact(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, assign: bool = False) -> None:
    """Load ``state`` into ``model``: every key used, none missing, same shapes; else a ValueError naming them.

    ``assign=True`` takes the tensors themselves (for a model built on the meta device: no second copy in memory).
    """
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match the model: {len(missing)} tensors missing {missing[:4]}, "
            f"{len(unexpected)} not used {unexpected[:4]}."
        )
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{source} does not match the model: {err}") from None
    left = [name for name, tensor in chain(model.named_parameters(), model.named_buffers()) if tensor.is_meta]
    if left:
        raise ValueError(f"{source} left tensors of the model without values: {left[:4]}")
