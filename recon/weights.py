"""Weight files: safetensors tensors plus the metadata that says what they are.

A weights file is a plain ``.safetensors`` file (readable by any safetensors client) whose
header metadata holds, JSON-encoded per key: ``architecture`` (registry name), ``config``
(factory keyword arguments, plus ``base`` for a network trained on a pixel-wise baseline),
``wavelengths`` (output band grid, nm), ``input`` (how RGB is normalised), ``track`` and ``css``
(the camera the model was trained for), ``train_command``,
``data`` and ``data_hash``, ``val_mrae``, ``rgb_mean`` (mean training RGB, used by
``--exposure-invariant``), ``speed`` (when measured) and ``hstool_version``.

Bundled weights live in ``recon/weights/<name>_<track>.safetensors``; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hstool.hsdata import ARAD_WAVELENGTHS, HsError, atomic_path
from hstool.hsdata.provenance import hstool_version

from .catalog import BUNDLED_DIR, bundled_weights, describe_models, read_metadata, training_record  # noqa: F401 -- as before, from here too
from .registry import build_model, model_spec

#: How every bundled model expects its input (the engine feeds read_rgb's output unchanged).
INPUT_NORM = "RGB float in [0, 1] (8-bit / 255, 16-bit / 65535) as decoded, no mean/std normalisation"


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a (weights) file's bytes, as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_path(name: str, track: str = "clean") -> Path:
    """Where the bundled weights of ``name`` for ``track`` live (the file may not exist)."""
    return BUNDLED_DIR / f"{name}_{track}.safetensors"


#: suffix of the per-output-channel scale stored beside an int8 weight (``--int8``)
INT8_SCALE = ".int8_scale"
#: ``--int8`` quantises tensors of at least this many values. The smaller ones (HRNet's first and last
#: layers and its full-resolution level: a tenth of its parameters) stay fp16: quantising them too moved
#: its outputs 5x as far (2.3e-3 against 4e-4 on held-out scenes) for 3 MB.
INT8_MIN_VALUES = 250_000


def quantise_int8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric weight-only int8 per output channel (dim 0): ``(q, scale)`` with ``q * scale ≈ t``,
    ``|q| <= 127`` and ``scale`` (fp32, one per output channel) = max |t| of the channel / 127."""
    flat = t.detach().float().flatten(1)
    scale = flat.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero channel stays zero
    q = torch.round(flat / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(t.shape), scale


def dequantise_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (q.float().flatten(1) * scale.float()[:, None]).reshape(q.shape)


def _int8_eligible(name: str, t: torch.Tensor, params: set[str]) -> bool:
    """Large weight matrices and kernels are stored as int8 by ``--int8``; biases, scales, buffers and
    tensors under :data:`INT8_MIN_VALUES` values stay."""
    return name in params and t.is_floating_point() and t.ndim >= 2 and t.numel() >= INT8_MIN_VALUES


def save_weights(model: torch.nn.Module, path: str | Path, meta: dict[str, Any], fp16: bool = False,
                 overwrite: bool = False, int8: bool = False) -> Path:
    """Write ``model``'s state dict and ``meta`` atomically.

    ``fp16=True`` stores floating-point *parameters* in half precision (buffers such as batch-norm
    statistics and the fitted values of pixel models stay fp32). ``int8=True`` stores large weight
    matrices and kernels as int8 with one fp32 scale per output channel (:func:`quantise_int8`,
    dequantised by :func:`load_weights`): half the size of fp16 for the largest networks. Call
    :func:`round_to_stored` first when the in-memory model must equal what a later load gives.
    """
    params = {n for n, _ in model.named_parameters()}
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        if int8 and _int8_eligible(name, t, params):
            tensors[name], tensors[name + INT8_SCALE] = quantise_int8(t)
            continue
        if fp16 and name in params and t.is_floating_point():
            t = t.half()
        tensors[name] = t
    header = {str(k): json.dumps(v) for k, v in meta.items()}
    header.setdefault("hstool_version", json.dumps(hstool_version()))
    path = Path(path)
    with atomic_path(path, overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def round_to_stored(model: torch.nn.Module, fp16: bool, int8: bool = False) -> None:
    """Round parameters in place as :func:`save_weights` will store them."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if int8 and _int8_eligible(name, p, {name}):
                p.copy_(dequantise_int8(*quantise_int8(p)))
            elif fp16 and p.is_floating_point():
                p.copy_(p.half().float())


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, metadata)`` of a weights file."""
    meta = read_metadata(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise HsError(f"cannot read the tensors ({exc})", path) from exc
    for key in [k for k in state if k.endswith(INT8_SCALE)]:  # --int8 files: back to floats
        name, scale = key[: -len(INT8_SCALE)], state.pop(key)
        q = state.get(name)
        if q is None or q.dtype != torch.int8 or scale.ndim != 1 or scale.shape[0] != q.shape[0]:
            raise HsError(f"int8 tensor '{name}' does not match its scale", path)
        state[name] = dequantise_int8(q, scale)
    return state, meta


def model_wavelengths(model: torch.nn.Module) -> np.ndarray:
    """The output band grid of a model built by :func:`create_model` (ARAD's when unknown)."""
    wl = getattr(model, "meta", {}).get("wavelengths")
    return np.asarray(wl, dtype=np.float64) if wl is not None else ARAD_WAVELENGTHS.copy()


def create_model(name: str | None, weights: str | Path | None = "bundled", track: str = "clean") -> torch.nn.Module:
    """Build model ``name`` in eval mode, with weights loaded.

    Parameters
    ----------
    name: registry name; ``None`` takes it from the weights file's ``architecture``.
    weights: ``"bundled"`` (``recon/weights/<name>_<track>.safetensors``), ``None`` (fresh,
        untrained) or the path of a weights file written by ``hstool train``.
    track: which bundled weights (``clean``, ``realworld``).

    The module gets ``.spec`` (:class:`ModelSpec`), ``.meta`` (the file's metadata, ``{}``
    when untrained) and ``.weights_path`` (the file loaded, ``None`` when untrained).

    >>> model = create_model("rootpoly", track="realworld")  # doctest: +SKIP
    """
    if weights is None:
        if name is None:
            raise HsError("a model name is needed when no weights file is given")
        spec = model_spec(name)
        model = build_model(name)
        meta: dict[str, Any] = {}
        path = None
    else:
        if isinstance(weights, str) and weights == "bundled":
            if name is None:
                raise HsError("a model name is needed for bundled weights")
            model_spec(name)
            from hstool.camera.pipeline import track_name

            track = track_name(track)  # as camera.track reads it: Real-World is realworld
            path = bundled_path(name, track)
            if not path.is_file():
                small = bundled_path(f"{name}_s", track)
                hint = f"use --model {name}_s (its bundled smaller configuration) or " if small.is_file() else ""
                raise HsError(
                    f"no bundled weights for model '{name}' on track '{track}'; {hint}train some with "
                    f"`hstool train --model {name} --track {track} --out W.safetensors` for `hstool recon --weights W.safetensors`"
                )
        else:
            path = Path(weights)
        state, meta = load_weights(path)
        arch = meta.get("architecture")
        if name is None:
            if not arch:
                raise HsError("weights file names no architecture; give the model name", path)
            name = arch
        elif arch and arch != name:
            raise HsError(f"weights are for model '{arch}', not '{name}'", path)
        spec = model_spec(name)
        config = meta.get("config") or {}
        try:
            model = build_model(name, **config)
        except (TypeError, ValueError) as exc:  # options of another hstool version
            raise HsError(f"weights' config {config} does not fit model '{name}' ({exc})", path) from exc
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise HsError(f"weights do not fit model '{name}' ({first[1].strip() if len(first) > 1 else first[0]})",
                          path) from exc
    model.eval()
    model.spec = spec
    model.meta = meta
    model.weights_path = path
    return model


def _count_parameters(name: str, config: dict[str, Any] | None = None) -> int:
    """Trainable parameters, or fitted buffer values for pixel-wise models (built on the meta
    device, so nothing is allocated), of model ``name`` built with ``config``."""
    with torch.device("meta"):
        model = build_model(name, **(config or {}))
    tensors = list(model.buffers()) if model_spec(name).kind == "pixel" else list(model.parameters())
    return int(sum(t.numel() for t in tensors))


def describe_weights(path: str | Path) -> dict[str, Any]:
    """What a weights file holds (``hstool train``'s or a bundled one): its model's record as
    :func:`describe_models` gives it, with the file's training record instead of the bundled list."""
    path = Path(path)
    meta = read_metadata(path)
    name = meta.get("architecture")
    if not name:
        raise HsError("weights file names no architecture", path)
    config = meta.get("config") or {}
    try:
        model = model_record(name, config)
    except HsError as exc:
        raise HsError(exc.message, path) from None
    except (TypeError, ValueError) as exc:  # options of another hstool version
        raise HsError(f"weights' config {config} does not fit model '{name}' ({exc})", path) from exc
    wavelengths = meta.get("wavelengths") or []
    extra = {k: meta.get(k) for k in ("val_data", "data_hash", "kept_epoch", "dtype", "train_seconds", "created")}
    extra["bands"] = (f"{len(wavelengths)} bands, {wavelengths[0]:g}-{wavelengths[-1]:g} nm" if wavelengths else None)
    extra["epochs_run"] = sum(1 for h in meta.get("history") or [] if h.get("epoch"))  # epoch 0: the --init weights
    return {**model, "file": str(path), **training_record(meta), **extra, "config": config}


def model_record(name: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Model ``name``'s record built with ``config`` (:data:`hstool.recon.catalog.CATALOG_FILE` holds
    each one's at its defaults)."""
    spec = model_spec(name)
    return {"name": name, "kind": spec.kind, "parameters": _count_parameters(name, config), "multiple": spec.multiple,
            "halo": spec.halo, "description": spec.description, "reference": spec.reference}
