"""What ``hstool models`` lists, without PyTorch: each registered model's record at its default
configuration (:data:`CATALOG_FILE`, kept beside the models and checked against the registry by
the tests) and the metadata in the bundled weights files' headers.

Importing the architectures (PyTorch and torch._dynamo) took 6-9 s of a listing that reads a few
kilobytes; ``hstool models`` now starts in well under a second. After changing an architecture's
registration or defaults, rewrite the catalogue with ``python -m hstool.recon.catalog``.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

from hstool.hsdata.errors import HsError

CATALOG_FILE = Path(__file__).parent / "models" / "catalog.json"
BUNDLED_DIR = Path(__file__).parent / "weights"


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a weights file, without reading its tensors (nor importing PyTorch)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise HsError("no such weights file", path)
    try:
        with safe_open(str(path), framework="numpy") as f:  # "pt" would import PyTorch
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise HsError(f"not a safetensors weights file ({exc})", path) from exc
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v  # written by another tool: keep the string
    return meta


def weights_file(spec: str | Path) -> Path:
    """The weights file ``spec`` names: a path, or a bundled file by ``NAME:TRACK`` (``mstpp_s:clean``,
    as ``hstool models`` lists them), which works from an installed package as from a checkout."""
    path = Path(spec)
    name, colon, track = str(spec).partition(":")
    if path.exists() or not colon or not name or not track or "/" in str(spec) or "\\" in str(spec):
        if path.is_dir():
            raise HsError("a folder, not a weights file", path)
        if not path.is_file():
            raise HsError("no such weights file (or NAME:TRACK of bundled weights, e.g. mstpp_s:clean)", path)
        return path
    from hstool.camera.pipeline import track_name

    bundled = BUNDLED_DIR / f"{name}_{track_name(track)}.safetensors"
    if not bundled.is_file():
        raise HsError(f"no bundled weights {spec} (hstool models lists the models and their tracks)")
    return bundled


def weights_name(path: str | Path) -> str:
    """``NAME:TRACK`` of a bundled weights file, else the path as given: how a command line names it
    wherever hstool is installed."""
    path = Path(path)
    if path.resolve().parent == BUNDLED_DIR.resolve() and path.suffix == ".safetensors":
        name, _, track = path.stem.rpartition("_")
        if name:
            return f"{name}:{track}"
    return str(path)


def bundled_weights() -> list[Path]:
    """Every bundled weights file, sorted."""
    return sorted(BUNDLED_DIR.glob("*.safetensors")) if BUNDLED_DIR.is_dir() else []


def training_record(meta: dict[str, Any]) -> dict[str, Any]:
    """How a weights file was trained, from its metadata."""
    keys = ("track", "css", "data", "data_short", "val_mrae", "speed", "train_command", "init")
    return {k: meta.get(k) for k in keys}


def catalog() -> dict[str, dict[str, Any]]:
    """Each registered model's record at its default configuration, by name (:data:`CATALOG_FILE`)."""
    return json.loads(CATALOG_FILE.read_text())


def describe_models(pattern: str = "*") -> list[dict[str, Any]]:
    """One record per registered model matching ``pattern``, with its bundled weights' metadata."""
    files = bundled_weights()
    rows = []
    for name, record in sorted(catalog().items()):
        if not fnmatch.fnmatch(name, pattern):
            continue
        bundled = []
        for f in files:
            if not f.stem.startswith(name + "_"):
                continue
            meta = read_metadata(f)
            if meta.get("architecture") != name:
                continue
            bundled.append({"file": f.name, **training_record(meta)})
        rows.append({**record, "bundled": bundled})
    return rows


def build_catalog() -> dict[str, dict[str, Any]]:
    """The catalogue as the registry gives it now (imports every architecture, and PyTorch)."""
    from .registry import list_models
    from .weights import model_record

    return {name: model_record(name) for name in list_models()}


if __name__ == "__main__":
    CATALOG_FILE.write_text(json.dumps(build_catalog(), indent=1) + "\n")
    print(f"wrote {CATALOG_FILE}")
