"""recon: spectral reconstruction models, their registry and the inference engine.

>>> from hstool.recon import Reconstructor
>>> rec = Reconstructor("rootpoly", track="clean")            # doctest: +SKIP
>>> cube = rec(read_rgb("ARAD_HS_0451_clean.png"))            # doctest: +SKIP

The names below are imported on first use (PEP 562), so that the numpy-only parts (``metrics``,
``clusters``, ``evaluate``'s scoring) and the commands built on them start without PyTorch, which
takes most of a second to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hstool.hsdata.lazy import lazy_names

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


__getattr__ = lazy_names(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from .catalog import read_metadata
    from .engine import Reconstructor, predict, resolve_device
    from .registry import ModelSpec, build_model, list_models, model_spec, register_model
    from .weights import create_model, load_weights, save_weights
