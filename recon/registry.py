"""Model registry (timm-style): ``register_model`` records a factory by name, ``create_model``
builds it, ``list_models`` answers what exists.

Every model, deep or pixel-wise, is a ``torch.nn.Module`` mapping an RGB batch ``(N, 3, H, W)``
in [0, 1] to a spectral batch ``(N, B, H, W)``; the inference engine (``recon.engine``) owns
device, padding to ``multiple``, tiling with a ``halo`` of context, precision and ensembling,
so no model file repeats them. Adding an architecture means adding one file under
``recon/models/`` that ends with a registered factory; nothing central changes.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from hstool.hsdata import HsError


@dataclass(frozen=True)
class ModelSpec:
    """What the engine and the CLI need to know about an architecture.

    Attributes
    ----------
    name: registry name (``hrnet``, ``mstpp``, ``linear``, ...).
    factory: builds the ``nn.Module``; keyword arguments select a configuration.
    kind: ``deep`` (spatial context) or ``pixel`` (one spectrum per RGB pixel).
    multiple: height and width must be multiples of this (the engine pads by reflection).
    halo: pixels of context a tile needs on each side for seamless tiling (receptive radius).
    description: one line for ``hstool models``.
    reference: the paper the architecture follows.
    """

    name: str
    factory: Callable
    kind: str = "deep"
    multiple: int = 1
    halo: int = 32
    description: str = ""
    reference: str = ""
    defaults: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}
_LOADED = {"done": False}


def register_model(
    name: str,
    *,
    kind: str = "deep",
    multiple: int = 1,
    halo: int = 32,
    description: str = "",
    reference: str = "",
    **defaults,
) -> Callable[[Callable], Callable]:
    """Decorator: record ``factory`` under ``name``.

    >>> @register_model("tiny", kind="pixel", halo=0)  # doctest: +SKIP
    ... def tiny(out_bands=31): return torch.nn.Conv2d(3, out_bands, 1)
    """

    def wrap(factory: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"model '{name}' is registered twice")
        _REGISTRY[name] = ModelSpec(name, factory, kind, multiple, halo, description, reference, defaults)
        return factory

    return wrap


def _load_all() -> None:
    """Import every module of ``recon.models`` once so their factories register themselves."""
    if _LOADED["done"]:
        return
    from . import models

    for info in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"{models.__name__}.{info.name}")
    _LOADED["done"] = True


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, sorted."""
    _load_all()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_spec(name: str) -> ModelSpec:
    _load_all()
    if name not in _REGISTRY:
        raise HsError(f"unknown model '{name}' (known: {', '.join(sorted(_REGISTRY)) or 'none'})")
    return _REGISTRY[name]


def build_model(name: str, base: str | None = None, **kwargs):
    """A fresh, untrained ``nn.Module`` of architecture ``name`` (no weights loaded).

    ``base`` names a pixel-wise model whose output the deep network ``name`` corrects
    (:class:`hstool.recon.residual.ResidualOnBase`); its fitted values come with the weights.
    """
    spec = model_spec(name)
    model = spec.factory(**{**spec.defaults, **kwargs})
    if base is None:
        return model
    if spec.kind != "deep" or model_spec(base).kind != "pixel":
        raise HsError(f"a base must be a pixel-wise model under a deep one, not '{base}' under '{name}'")
    from .residual import ResidualOnBase

    out_bands = kwargs.get("out_bands")
    return ResidualOnBase(build_model(base, **({"out_bands": out_bands} if out_bands else {})), model)
