"""``torch.compile`` for a transformer that runs under an ecad cache, done the way that compiles least.

ecad's runtime traces no decision (:mod:`ecad.runtime.hooks`), so both ways work with ``fullgraph=True``:

- ``"regional"`` compiles each repeated block, through diffusers' ``compile_repeated_blocks`` where the model class
  declares ``_repeated_blocks`` (FLUX), else ``block.compile()`` on each of the adapter's blocks (PixArt, SD3, Sana).
  Blocks with equal plans share a graph, so the graphs are few (one per distinct block plan, block kind and input
  layout) and compile in seconds on a GPU; the code outside the blocks stays eager.
- ``"whole"`` compiles the transformer's call: one graph per distinct step plan, no Python between the blocks, the
  form ``mode="reduce-overhead"`` (CUDA graphs) needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..adapters import ModelAdapter, get_adapter
from ..adapters.layout import split_target
from ..names import COMPILE_SCOPES as SCOPES


def compile_transformer(
    target: Any, scope: str = "regional", *, adapter: ModelAdapter | None = None, **compile_kwargs: Any
) -> nn.Module:
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
    _check_scope(scope)
    transformer, _ = split_target(target)
    if scope == "whole":
        transformer.compile(**compile_kwargs)
    elif getattr(transformer, "_repeated_blocks", None):
        transformer.compile_repeated_blocks(**compile_kwargs)
    else:
        for _, _, block, _ in get_adapter(transformer, adapter).blocks(transformer):
            block.compile(**compile_kwargs)
    return transformer


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"compile scope must be one of {SCOPES}, got {scope!r}.")


@dataclass(frozen=True)
class CompileConfig:
    """How a measurement compiles the transformer it times, so that the cost it records is the cost users run.

    Args:
        scope: ``"regional"`` or ``"whole"`` (see :func:`compile_transformer`).
        backend: ``torch.compile``'s backend: a registered name (``"inductor"``; ``"eager"`` traces without
            generating code, for tests) or a callable such as dynamo's ``CompileCounter``.
    """

    scope: str = "regional"
    backend: str | Callable[..., Any] = "inductor"

    def __post_init__(self) -> None:
        _check_scope(self.scope)

    @property
    def backend_name(self) -> str:
        return self.backend if isinstance(self.backend, str) else type(self.backend).__name__

    @property
    def label(self) -> str:
        return f"{self.scope} ({self.backend_name})"


def compile_config(scope: str | None, backend: str | None) -> CompileConfig | None:
    """A run's compile settings (``None``: eager), refused where a backend is named but nothing is compiled."""
    if scope is None:
        if backend is not None:
            raise ValueError(
                f"--compile-backend {backend} names how to compile, but nothing is compiled: add "
                "--compile (regional or whole) or leave --compile-backend out."
            )
        return None
    return CompileConfig(scope, backend or "inductor")


@contextmanager
def compiled(
    target: Any, config: CompileConfig, *, adapter: ModelAdapter | None = None, **compile_kwargs: Any
) -> Iterator[nn.Module]:
    """:func:`compile_transformer` for the length of a ``with`` block, the modules as they were after it (their
    graphs stay in dynamo's cache): a measurement compiles what it times and leaves the caller's model as it was.
    ``compile_kwargs`` go to ``torch.compile`` beside the config's backend (``fullgraph``, ``mode``)."""
    before = {module: module._compiled_call_impl for module in split_target(target)[0].modules()}
    transformer = compile_transformer(target, config.scope, adapter=adapter, backend=config.backend, **compile_kwargs)
    try:
        yield transformer
    finally:
        for module, call in before.items():
            module._compiled_call_impl = call


@contextmanager
def timed_calls(module: nn.Module, seconds: Callable[[float], None], sync: Callable[[], None]) -> Iterator[None]:
    """Report the seconds of every call of ``module`` to ``seconds``, timed around its compiled call where it has one:
    outside the compiled frame, so the timer adds no graph break and times the graph users run (a forward hook runs
    inside ``Module._call_impl``, which ``module.compile()`` traces). Not for a module inside a compiled region (its
    calls are traced, not made)."""
    inner = module._compiled_call_impl or module._call_impl

    def call(*args: Any, **kwargs: Any) -> Any:
        sync()
        start = time.perf_counter()
        result = inner(*args, **kwargs)
        sync()
        seconds(time.perf_counter() - start)
        return result

    kept = module._compiled_call_impl
    module._compiled_call_impl = call
    try:
        yield
    finally:
        module._compiled_call_impl = kept
