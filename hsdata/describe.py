"""A summary of one file's contents: what ``hstool info`` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import HsError
from .formats import detect_format, read_cube
from .formats.image import read_native, scale_of
from .provenance import PROVENANCE, read_sidecar

#: a band grid is uniform when every step is within this of the median step: values written with
#: two decimals (ENVI headers) move a step by up to 0.01 nm; the Specim IQ's 2.9-3.1 nm steps are not
UNIFORM_TOLERANCE_NM = 0.011

def _value_stats(data: np.ndarray, chunk_rows: int = 64) -> dict[str, Any]:
    """min/mean/max over finite values and the NaN/inf count, in row chunks (no full copy)."""
    lo, hi, total, count, nan, inf = np.inf, -np.inf, 0.0, 0, 0, 0
    for start in range(0, data.shape[0], chunk_rows):
        block = np.asarray(data[start : start + chunk_rows], dtype=np.float64)
        finite = np.isfinite(block)
        nan += int(np.isnan(block).sum())
        inf += int(np.isinf(block).sum())
        vals = block[finite]
        if vals.size:
            lo, hi = min(lo, float(vals.min())), max(hi, float(vals.max()))
            total += float(vals.sum())
            count += vals.size
    return {
        "min": lo if count else float("nan"),
        "mean": total / count if count else float("nan"),
        "max": hi if count else float("nan"),
        "nan_count": nan,
        "inf_count": inf,
    }


def describe(path: str | Path, format: str | None = None) -> dict[str, Any]:
    """Format, shape (H, W, B), dtype, band grid, value statistics and metadata of a file."""
    path = Path(path)
    if not path.exists():  # before its type: "nonexist" is missing, not of an unknown type
        raise HsError("no such file", path)
    fmt = detect_format(path, format)
    if fmt == "image":
        arr = read_native(path)
        h, w = arr.shape[:2]
        b = 1 if arr.ndim == 2 else arr.shape[2]
        stats = _value_stats(arr.reshape(h, w, b) / scale_of(arr.dtype))
        return {
            "path": str(path),
            "format": f"image ({path.suffix.lower().lstrip('.')})",
            "shape": [h, w, b],
            "dtype": str(arr.dtype),
            "bit_depth": int(arr.dtype.itemsize * 8),
            **stats,
        }
    cube = read_cube(path, fmt, dtype=None)
    wl = cube.wavelengths
    steps = np.diff(wl)
    step = float(np.median(steps)) if steps.size else float("nan")
    meta = {k: v for k, v in cube.meta.items() if k not in ("format", "source", "mat_version", PROVENANCE)}
    # what made the cube: the file's own record, else its sidecar's (a .npy holds the array alone)
    provenance = cube.meta.get(PROVENANCE) or (read_sidecar(path) or {}).get(PROVENANCE)
    return {
        "path": str(path),
        "format": cube.meta.get("format", fmt) + (f" v{cube.meta['mat_version']}" if "mat_version" in cube.meta else ""),
        "shape": list(cube.shape),
        # the file's type (uint16, not >u2: the byte order is the file's business), though an ENVI
        # file with an ignore value or scale factor is described in the values it stands for
        "dtype": np.dtype(cube.meta.get("file_dtype", cube.data.dtype)).name,
        "wavelength_min": float(wl[0]),
        "wavelength_max": float(wl[-1]),
        "wavelength_step": step,  # the median step; uniform: every step within header rounding of it
        "wavelength_step_range": [float(steps.min()), float(steps.max())] if steps.size else [step, step],
        "uniform_grid": bool(steps.size == 0 or np.allclose(steps, step, rtol=0, atol=UNIFORM_TOLERANCE_NM)),
        **_value_stats(cube.data),
        "units": cube.meta.get("units", "unknown"),
        "meta": {k: v for k, v in meta.items() if k != "units"},
        **({PROVENANCE: provenance} if provenance else {}),
    }
