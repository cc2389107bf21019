"""recon: spectral reconstruction models, their registry and the inference engine.

>>> from hstool.recon import Reconstructor
>>> rec = Reconstructor("rootpoly", track="clean")            # doctest: +SKIP
>>> cube = rec(read_rgb("ARAD_HS_0451_clean.png"))            # doctest: +SKIP
"""

from .engine import Reconstructor, predict, resolve_device
from .registry import ModelSpec, build_model, list_models, model_spec, register_model
from .weights import create_model, load_weights, read_metadata, save_weights

__all__ = [
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
