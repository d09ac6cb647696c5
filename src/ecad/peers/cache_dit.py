"""cache-dit's DBCache as an ecad baseline, with and without its TaylorSeer calibrator (extra ``ecad[peers]``).

Applied with ``cache_dit.enable_cache(pipe, cache_config=DBCacheConfig(...), calibrator_config=...)`` and removed
with ``cache_dit.disable_cache(pipe)``. cache-dit opens and resets its own context per pipeline call (it wraps the
pipeline class's ``__call__``), so nothing else is needed; what its removal leaves (an instance ``forward`` on the
transformer) is taken away by :class:`~ecad.peers.base.PipelineState`.

cache-dit picks its adapter by the pipeline class's name, so a subclass of a pipeline it supports under another
name (tiny-shapes' ``TinyShapesPipeline`` is a ``PixArtAlphaPipeline``) gets the adapter cache-dit registers for the
transformer, rebuilt as a ``BlockAdapter`` on the real pipeline (so that cache-dit still wraps its ``__call__``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .base import Peer

INSTALL = "pip install 'ecad[peers]'"


def _cache_dit() -> Any:
    try:
        import cache_dit
    except ImportError:
        raise ImportError(f"the dbcache baselines need cache-dit: {INSTALL}") from None
    return cache_dit


class DBCache(Peer):
    """``dbcache:Fn,Bn,THRESHOLD[,WARMUP]``: the first Fn and last Bn blocks always run; the blocks between are
    skipped (their residual reused) while the output of the first Fn blocks changes less than THRESHOLD (relative
    L1) from the step before, after WARMUP full steps (cache-dit's default 8)."""

    family = "dbcache"
    usage = "dbcache:Fn,Bn,THRESHOLD[,WARMUP]"
    library = "cache-dit"
    install = INSTALL
    arity = (3, 4)
    sweep = ("1,0,0.16", "1,0,0.32", "1,0,0.32,4", "1,0,0.64,4")
    calibrated = False

    def cache_config(self) -> dict[str, Any]:
        """The ``DBCacheConfig`` fields this setting gives (the others keep cache-dit's defaults)."""
        fn, bn, threshold, *warmup = self.args
        return {
            "Fn_compute_blocks": int(fn),
            "Bn_compute_blocks": int(bn),
            "residual_diff_threshold": threshold,
            **({"max_warmup_steps": int(warmup[0])} if warmup else {}),
        }

    def settings(self) -> dict[str, Any]:
        return {**self.cache_config(), **({"calibrator": "TaylorSeer, order 1"} if self.calibrated else {})}

    @contextlib.contextmanager
    def _applied(self, pipe: Any, call: dict[str, Any]) -> Iterator[None]:
        cache_dit = _cache_dit()
        calibrator = cache_dit.TaylorSeerCalibratorConfig(taylorseer_order=1) if self.calibrated else None
        cache_dit.enable_cache(
            _block_adapter(cache_dit, pipe),
            cache_config=cache_dit.DBCacheConfig(
                **self.cache_config(), num_inference_steps=call["num_inference_steps"]
            ),
            calibrator_config=calibrator,
        )
        try:
            yield
        finally:
            cache_dit.disable_cache(pipe)


def _block_adapter(cache_dit: Any, pipe: Any) -> Any:
    """``pipe`` itself when cache-dit knows its class by name, else cache-dit's adapter for its transformer on it."""
    register = cache_dit.BlockAdapterRegister
    if register.is_supported(pipe) or not register.is_supported(pipe.transformer):
        return pipe  # cache-dit's own adapter, or its own error for a model it does not support
    known = register.get_adapter(pipe.transformer)
    return cache_dit.BlockAdapter(
        pipe=pipe,
        transformer=pipe.transformer,
        blocks=known.blocks,
        forward_pattern=known.forward_pattern,
        check_forward_pattern=True,
    )


class DBCacheTaylorSeer(DBCache):
    """``dbcache-taylorseer:Fn,Bn,THRESHOLD[,WARMUP]``: DBCache whose skipped blocks' residual is forecast by
    cache-dit's first-order TaylorSeer calibrator instead of reused as is."""

    family = "dbcache-taylorseer"
    usage = "dbcache-taylorseer:Fn,Bn,THRESHOLD[,WARMUP]"
    calibrated = True


FAMILIES: tuple[type[Peer], ...] = (DBCache, DBCacheTaylorSeer)
