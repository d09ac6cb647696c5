"""What every peer method shares: its description, and leaving the pipeline exactly as it was found.

A :class:`Peer` is one setting of another library's caching method (``fbcache:0.1``). ``peer.apply(pipe, call)`` is a
context manager: inside it the pipeline runs under the method, applied through that library's own public API; on
exit the method's own removal runs, then :class:`PipelineState` takes away whatever it left behind (instance
``forward`` attributes, empty hook registries, class attributes), so the pipeline is the one it was before: same
attributes, same hooks, bit-identical outputs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

from torch import nn

from ..runtime.hook_registry import registry_of

logger = logging.getLogger(__name__)


class PeerError(ValueError):
    """Another library's method failed on this model (often: it does not support it)."""


def pipeline_modules(pipe: Any) -> list[nn.Module]:
    """Every module of every model component of the pipeline (transformer, text encoder, VAE, ...)."""
    components = getattr(pipe, "components", None) or {"transformer": pipe.transformer}
    return [m for c in components.values() if isinstance(c, nn.Module) for m in c.modules()]


def _hook_names(module: nn.Module) -> list[str]:
    registry = registry_of(module)
    return list(registry.hooks) if registry is not None else []


class PipelineState:
    """A record of what a method could change on a pipeline, to put it back afterwards.

    Recorded: the instance attributes of the pipeline and of each module, the order of each module's children
    (cache-dit swaps block lists in and out with ``mock.patch``, which moves them to the end: diffusers' First Block
    Cache then takes the wrong block as the first), the diffusers hooks on each module, the number of torch hooks on
    each module, and the pipeline class's attributes (cache-dit patches ``__call__`` on the class). :meth:`restore`
    removes diffusers hooks and attributes that appeared since, puts the children back in order, and puts back class
    attributes that were replaced.
    """

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.modules = pipeline_modules(pipe)
        self.attributes = [set(vars(m)) for m in self.modules]
        self.children = [list(m._modules) for m in self.modules]
        self.hooks = [_hook_names(m) for m in self.modules]
        self.torch_hooks = [_torch_hook_count(m) for m in self.modules]
        self.pipe_attributes = set(vars(pipe))
        self.class_attributes = dict(vars(type(pipe)))

    def restore(self) -> None:
        for module, attributes, hooks in zip(self.modules, self.attributes, self.hooks, strict=True):
            for name in reversed([n for n in _hook_names(module) if n not in hooks]):
                registry_of(module).remove_hook(name, recurse=False)
            for name in set(vars(module)) - attributes:
                logger.debug("removing %s left on %s", name, type(module).__name__)
                delattr(module, name)
        for module, children in zip(self.modules, self.children, strict=True):
            if list(module._modules) != children:
                for name in children:
                    module._modules[name] = module._modules.pop(name)
        for name in set(vars(self.pipe)) - self.pipe_attributes:
            delattr(self.pipe, name)
        cls = type(self.pipe)
        for name in set(vars(cls)) - set(self.class_attributes):
            delattr(cls, name)
        for name, value in self.class_attributes.items():
            if vars(cls).get(name) is not value:
                setattr(cls, name, value)
        for module in self.modules:  # registries that stay may have cached registries that went
            registry = registry_of(module)
            if registry is not None:
                registry.invalidate_child_registries_cache()

    def leftovers(self) -> list[str]:
        """What differs from the record (empty after :meth:`restore`): for tests and for a clear error."""
        found = []
        for module, attributes, hooks, count, children in zip(
            self.modules, self.attributes, self.hooks, self.torch_hooks, self.children, strict=True
        ):
            name = type(module).__name__
            found += [f"{name}.{a}" for a in sorted(set(vars(module)) - attributes)]
            if list(module._modules) != children:
                found.append(f"{name} children reordered")
            found += [f"{name} diffusers hook {h}" for h in _hook_names(module) if h not in hooks]
            if _torch_hook_count(module) != count:
                found.append(f"{name} torch hooks")
        found += [f"pipeline.{a}" for a in sorted(set(vars(self.pipe)) - self.pipe_attributes)]
        cls = type(self.pipe)
        found += [f"{cls.__name__}.{a}" for a in sorted(set(vars(cls)) ^ set(self.class_attributes))]
        found += [f"{cls.__name__}.{a} replaced" for a, v in self.class_attributes.items() if vars(cls).get(a) is not v]
        return found


def _torch_hook_count(module: nn.Module) -> int:
    return sum(len(getattr(module, d)) for d in ("_forward_hooks", "_forward_pre_hooks"))


@contextlib.contextmanager
def restored(pipe: Any) -> Iterator[PipelineState]:
    """Record the pipeline, run the body (which applies and removes a method), then take away what is left."""
    state = PipelineState(pipe)
    try:
        yield state
    finally:
        state.restore()


@dataclass(frozen=True)
class Peer:
    """One setting of a caching method from another library.

    Subclasses set ``family``, ``library`` (the distribution whose public API applies it) and implement
    :meth:`_applied`; ``args`` are the setting's numbers as given in the spec (``fbcache:0.1`` -> ``(0.1,)``).
    """

    family: ClassVar[str] = ""
    library: ClassVar[str] = ""
    usage: ClassVar[str] = ""  # the spec's form, for messages: "fbcache:THRESHOLD"
    arity: ClassVar[tuple[int, int]] = (0, 0)  # fewest and most numbers a spec gives
    sweep: ClassVar[tuple[str, ...]] = ()  # the default settings, mild to aggressive
    install: ClassVar[str] = ""  # how to get the library, for the error when it is missing
    args: tuple[float, ...] = ()
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # per-model calibration results

    @property
    def spec(self) -> str:
        return f"{self.family}:{','.join(f'{a:g}' for a in self.args)}" if self.args else self.family

    @property
    def name(self) -> str:
        """A file-system friendly name: ``fbcache-0.1``, ``dbcache-1-0-0.08``."""
        return self.spec.replace(":", "-").replace(",", "-")

    def settings(self) -> dict[str, Any]:
        """The method's configuration as run (for the results and the report)."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "format": "ecad.peer/1",
            "family": self.family,
            "spec": self.spec,
            "library": self.library,
            "library_version": self.library_version(),
            "settings": self.settings(),
        }

    def library_version(self) -> str:
        try:
            return version(self.library)
        except PackageNotFoundError:
            raise ImportError(f"the {self.family} baseline needs {self.library}: {self.install}") from None

    @contextlib.contextmanager
    def apply(self, pipe: Any, call: dict[str, Any]) -> Iterator[None]:
        """Run ``pipe`` under this method inside the ``with`` block; the pipeline is restored exactly on exit.

        ``call`` holds the keyword arguments of the calls the pipeline will serve (steps, guidance, size, a prompt),
        for methods that calibrate or need the step count. An error raised while the method is applied or running
        becomes a :class:`PeerError` naming the method, its library and the model (the pipeline is restored first).
        """
        try:
            with restored(pipe), self._applied(pipe, call):
                yield
        except PeerError:
            raise
        except Exception as err:
            raise PeerError(
                f"{self.spec} ({self.library} {self.library_version()}) failed on {type(pipe.transformer).__name__}: "
                f"{type(err).__name__}: {err}. The method may not support this model; leave it out of the baselines."
            ) from err

    def _applied(self, pipe: Any, call: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError
