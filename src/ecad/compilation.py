"""``torch.compile`` for a transformer that runs under an ecad cache, done the way that compiles least.

ecad's runtime traces no decision (:mod:`ecad.hooks`), so both ways work with ``fullgraph=True``:

- ``"regional"`` compiles each repeated block, through diffusers' ``compile_repeated_blocks`` where the model class
  declares ``_repeated_blocks`` (FLUX), else ``block.compile()`` on each of the adapter's blocks (PixArt, SD3, Sana).
  Blocks with equal plans share a graph, so the graphs are few (one per distinct block plan, block kind and input
  layout) and compile in seconds on a GPU; the code outside the blocks stays eager.
- ``"whole"`` compiles the transformer's call: one graph per distinct step plan, no Python between the blocks, the
  form ``mode="reduce-overhead"`` (CUDA graphs) needs.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .adapters import ModelAdapter, get_adapter
from .adapters.layout import split_target as _split_target

SCOPES = ("regional", "whole")


def compile_transformer(target: Any, scope: str = "regional", *, adapter: ModelAdapter | None = None,
                        **compile_kwargs: Any) -> nn.Module:
    """Compile the transformer of ``target`` in place, with or without an ecad cache enabled (before or after).

    Args:
        target: a diffusers pipeline or its transformer.
        scope: ``"regional"`` (each block) or ``"whole"`` (the transformer's call).
        adapter: for models no registered adapter knows (regional compilation needs the block lists).
        **compile_kwargs: passed to ``torch.compile`` (``fullgraph=True``, ``mode="reduce-overhead"``, ``backend``...).

    Returns:
        The transformer (compiled in place: the pipeline keeps using the same module).

    Example:

    ```python
    handle = ecad.enable_cache(pipe, "fast.json")
    ecad.compile_transformer(pipe, "regional", fullgraph=True)  # or "whole", mode="reduce-overhead"
    image = pipe("a red circle above a blue square", num_inference_steps=20).images[0]  # compiles on first use
    ```
    """
    if scope not in SCOPES:
        raise ValueError(f"compile scope must be one of {SCOPES}, got {scope!r}.")
    transformer, _ = _split_target(target)
    if scope == "whole":
        transformer.compile(**compile_kwargs)
    elif getattr(transformer, "_repeated_blocks", None):
        transformer.compile_repeated_blocks(**compile_kwargs)
    else:
        for _, _, block, _ in get_adapter(transformer, adapter).blocks(transformer):
            block.compile(**compile_kwargs)
    return transformer
