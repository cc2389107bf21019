"""recon: spectral reconstruction models, their registry and the inference engine.

>>> from hstool.recon import Reconstructor
>>> rec = Reconstructor("rootpoly", track="clean")            # doctest: +SKIP
>>> cube = rec(read_rgb("ARAD_HS_0451_clean.png"))            # doctest: +SKIP

The names below are imported on first use (PEP 562), so that the numpy-only parts (``metrics``,
``clusters``, ``evaluate``'s scoring) and the commands built on them start without PyTorch, which
takes most of a second to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "Reconstructor": "engine",
    "predict": "engine",
    "resolve_device": "engine",
    "ModelSpec": "registry",
    "build_model": "registry",
    "list_models": "registry",
    "model_spec": "registry",
    "register_model": "registry",
    "create_model": "weights",
    "load_weights": "weights",
    "read_metadata": "catalog",
    "save_weights": "weights",
}

__all__ = [  # the keys of _LAZY
    "ModelSpec",
    "Reconstructor",
    "build_model",
    "create_model",
    "list_models",
    "load_weights",
    "model_spec",
    "predict",
    "read_metadata",
    "register_model",
    "resolve_device",
    "save_weights",
]


def __getattr__(name: str):
    """A name of :data:`_LAZY` from its module, looked up anew each time (so a patched
    ``engine.Reconstructor`` is what ``hstool.recon.Reconstructor`` gives), or a submodule
    (``hstool.recon.engine`` after a bare ``import hstool.recon``, as before the names were lazy)."""
    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists and failed to import something
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from .catalog import read_metadata
    from .engine import Reconstructor, predict, resolve_device
    from .registry import ModelSpec, build_model, list_models, model_spec, register_model
    from .weights import create_model, load_weights, save_weights
