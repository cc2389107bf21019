"""Export a reconstruction model to ONNX with dynamic height and width, and check it.

The TorchScript-based exporter (``dynamo=False``) is used on purpose: it runs offline with no
extra package (the torch.export-based exporter needs ``onnxscript``), gives the same file for
the same model, and records ``dynamic_axes`` for the image height and width, so one ``.onnx``
serves every image size that follows the model's size rule (:func:`size_rule`: multiples of
``spec.multiple``, at least a least side; padding to it, as ``recon.engine`` does, stays the
caller's job outside PyTorch). The graph ends as ``hstool recon`` does: values below 0 set to 0.

>>> from hstool.recon.registry import build_model          # doctest: +SKIP
>>> path = export_onnx(build_model("mstpp"), "mstpp.onnx")  # doctest: +SKIP
>>> check_onnx(build_model("mstpp"), path, (64, 96)) < 1e-4  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hstool.hsdata import HsError, atomic_path

INPUT_NAME = "rgb"
OUTPUT_NAME = "cube"


def _multiple(model: nn.Module) -> int:
    spec = getattr(model, "spec", None)
    return int(getattr(spec, "multiple", 1) or 1)


def _opset_range() -> tuple[int, int]:
    """The opsets the TorchScript exporter writes (checked before it starts: on failure it
    prints its whole graph on stdout from C++, which no Python redirect catches)."""
    try:
        from torch.onnx import _constants
    except ImportError:  # a PyTorch without the module: let the exporter decide
        return 1, 10**6
    return _constants.ONNX_MIN_OPSET, getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET)


class Deployed(nn.Module):
    """The model as ``hstool recon`` runs it past its padding: spectra below 0 set to 0."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).clamp_min(0)


def size_rule(model: nn.Module) -> tuple[int, int]:
    """(multiple, least side) the image is reflect-padded to, as :func:`hstool.recon.engine.predict`
    pads it; a pixel model takes any size (1, 1)."""
    from .engine import least_side

    spec = getattr(model, "spec", None)
    m = _multiple(model)
    if getattr(spec, "kind", None) == "pixel":
        return 1, 1
    return m, least_side(m)


def model_metadata(model: nn.Module) -> dict[str, str]:
    """What a user of the ``.onnx`` file needs that its graph does not say (stored as its
    ``metadata_props``): the input convention, the size rule and, where known, the bands and track."""
    meta = getattr(model, "meta", None) or {}
    m, least = size_rule(model)
    rule = (f"H and W multiples of {m} and at least {least}: pad (numpy reflect) at the bottom and right and crop "
            "the output back, as hstool does" if least > 1 else "any H and W")
    out = {
        "hstool.input": "rgb: (N, 3, H, W) float32 linear camera RGB in [0, 1] (8-bit values / 255)",
        "hstool.output": "cube: (N, B, H, W) float32 spectra, values below 0 set to 0 (as hstool recon does)",
        "hstool.multiple": str(m),
        "hstool.min_side": str(least),
        "hstool.size_rule": rule,
    }
    note = getattr(model, "onnx_note", None)
    if note:
        out["hstool.note"] = note
    if meta.get("wavelengths") is not None:
        out["hstool.wavelengths_nm"] = ",".join(f"{float(w):g}" for w in meta["wavelengths"])
    for key in ("architecture", "track"):
        if meta.get(key):
            out[f"hstool.{key}"] = str(meta[key])
    return out


def _describe(path: Path, props: dict[str, str], bands: int) -> None:
    """Add ``props`` to the ONNX file's ``metadata_props`` (needs the ``onnx`` package, which the
    exporter itself needs), and state the output's band count where the graph left it symbolic
    (a pixel model's matrix product through a cast did)."""
    import onnx

    proto = onnx.load(str(path))
    band_dim = proto.graph.output[0].type.tensor_type.shape.dim[1]
    if not band_dim.dim_value:
        band_dim.dim_value = bands
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def export_onnx(
    model: nn.Module,
    path: str | Path,
    opset: int = 17,
    height: int = 64,
    width: int = 64,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as ONNX: input ``rgb`` (N, 3, H, W) float32, output ``cube`` (N, B, H, W).

    Batch, height and width are dynamic axes; ``height``/``width`` only set the example traced
    (rounded up to the model's ``multiple``). The file is written atomically (temporary name,
    then rename) and refuses to replace an existing file unless ``overwrite``.
    """
    path = Path(path)
    low, high = _opset_range()
    if not low <= opset <= high:
        raise HsError(f"opset {opset} is outside what this PyTorch exports ({low}-{high})", path)
    m = _multiple(model)
    height, width = -(-height // m) * m, -(-width // m) * m
    was_training = model.training
    model.eval()
    example = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    try:
        with atomic_path(path, overwrite=overwrite) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notices
            torch.onnx.export(
                Deployed(model).eval(),
                (example,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                    OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                },
                do_constant_folding=True,
            )
            with torch.no_grad():
                bands = int(model(example).shape[1])
            _describe(tmp, model_metadata(model), bands)
    except HsError:
        raise
    except Exception as exc:  # exporter errors name the operator; keep that, name the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HsError(f"ONNX export failed: {first}", path) from exc
    finally:
        model.train(was_training)
    return path


def check_onnx(model: nn.Module, path: str | Path, size: tuple[int, int] = (48, 80), seed: int = 0) -> float:
    """Max |onnxruntime − PyTorch| on a random RGB batch of ``size`` (H, W) (rounded to ``multiple``).

    Use a size different from the export size to confirm the height/width axes are dynamic.
    Needs ``onnxruntime`` (``pip install hstool[onnx]``).
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise HsError("onnxruntime is not installed (pip install 'hstool[onnx]')", path) from exc
    m, least = size_rule(model)
    h, w = (max(-(-s // m) * m, least) for s in size)
    rgb = np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: graph-optimiser notices are not the user's concern
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: rgb})[0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        want = Deployed(model)(torch.from_numpy(rgb)).numpy()
    model.train(was_training)
    if got.shape != want.shape:
        raise HsError(f"ONNX output shape {got.shape} differs from PyTorch {want.shape}", path)
    return float(np.abs(got - want).max())
