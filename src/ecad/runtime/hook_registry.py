"""Reading and removing diffusers hook registries without creating them.

diffusers' public ``HookRegistry.check_if_exists_or_initialize`` creates a registry (an instance attribute and, with
the first hook, an instance ``forward``) on every module it is asked about, and nothing public removes one. Looking
at a model must leave it as it was, and a model whose hooks are all removed must be as it was built, so the registry's
attribute is read and deleted here, and nowhere else.
"""

from __future__ import annotations

from diffusers.hooks import HookRegistry
from torch import nn

_REGISTRY_ATTRIBUTE = "_diffusers_hook"  # where diffusers.hooks.HookRegistry keeps a module's registry


def registry_of(module: nn.Module) -> HookRegistry | None:
    """The module's own hook registry, or ``None`` where it has none (none is created)."""
    return vars(module).get(_REGISTRY_ATTRIBUTE)


def remove_hooks(module: nn.Module, names: tuple[str, ...]) -> None:
    """Remove the named hooks of one module; without hooks left it is as it was built (no registry, no instance
    forward)."""
    registry = registry_of(module)
    if registry is None:
        return
    for name in names:
        registry.remove_hook(name, recurse=False)
    if not registry.hooks:
        module.__dict__.pop("forward", None)
        delattr(module, _REGISTRY_ATTRIBUTE)
