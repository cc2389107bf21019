"""NumPy cubes: ``.npy`` holds the (H, W, B) array alone; ``.npz`` holds ``cube``,
``wavelengths`` and ``meta`` (a JSON string)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..cube import FILE_META, Cube, as_type, check_real, default_wavelengths, json_value
from ..errors import HsError


def read(path: str | Path, dtype=np.float32, archive: bool | None = None) -> Cube:
    """A cube from a ``.npy`` array or a ``.npz`` archive (``archive``; None: by the suffix)."""
    path = Path(path)
    archive = path.suffix.lower() == ".npz" if archive is None else archive
    if not path.is_file():
        raise HsError("no such file", path)
    meta: dict = {}
    wl = None
    try:
        loaded = np.load(path, mmap_mode=None if archive else "r", allow_pickle=False)
        if isinstance(loaded, np.ndarray) == archive:  # the contents against the name (or the format given)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                loaded.close()
            held, expected = ("a single array (.npy)", "an .npz archive") if archive else \
                ("an archive of arrays (.npz)", "a .npy array")
            raise HsError(f"the file holds {held}, not {expected} as its name or --format says", path)
        if archive:
            with loaded as z:
                key = next((k for k in ("cube", "data") if k in z.files), None)
                if key is None:
                    raise HsError(f"npz has no 'cube' array (arrays: {', '.join(z.files) or 'none'})", path)
                data = z[key]
                for k in ("wavelengths", "bands"):
                    if k in z.files:
                        wl = np.asarray(z[k], dtype=np.float64).reshape(-1)
                if "meta" in z.files:
                    meta = json.loads(str(z["meta"]))
                    if not isinstance(meta, dict):
                        raise HsError("npz 'meta' is not a JSON object", path)
        else:
            data = loaded
    except HsError:
        raise
    except Exception as exc:
        if "pickled" in str(exc):  # no NumPy header: numpy would take it for a pickle, hstool never unpickles
            raise HsError("not a NumPy file (no .npy/.npz header)", path) from exc
        raise HsError(f"not a readable NumPy file ({exc})", path) from exc
    if data.ndim != 3 or not np.issubdtype(data.dtype, np.number):
        raise HsError(f"expected a numeric (H, W, B) array, got {data.dtype} {data.shape}", path)
    check_real(data, path)
    if wl is None:
        wl = default_wavelengths(data.shape[2])
        if wl is None:
            raise HsError(f"no wavelengths stored for a {data.shape[2]}-band cube (use .npz)", path)
    if dtype is not None:  # a private, writable array, not the read-only file mapping
        data = as_type(data, dtype, path, copy=isinstance(data, np.memmap))
    meta.update(format="npz" if archive else "npy", source=str(path))
    return Cube(data, wl, meta)


def check_npy_grid(wavelengths: np.ndarray, path: str | Path | None = None) -> None:
    """Refuse a band grid that a ``.npy`` file (the array alone) would not read back with."""
    wavelengths = np.asarray(wavelengths, dtype=np.float64)
    assumed = default_wavelengths(wavelengths.size)
    if assumed is None or not np.allclose(assumed, wavelengths, rtol=0, atol=1e-3):
        raise HsError(
            f".npy stores no wavelengths, and this {wavelengths.size}-band grid is not the one assumed "
            "on reading (400:700:10 for 31 bands): use npz, mat or envi",
            path,
        )


def write(cube: Cube, path: str | Path, overwrite: bool = False) -> list[Path]:
    path = Path(path)
    if path.suffix.lower() == ".npy":
        check_npy_grid(cube.wavelengths, path)
    with atomic_path(path, overwrite) as tmp, open(tmp, "wb") as fh:
        if path.suffix.lower() == ".npz":
            meta = {k: v for k, v in cube.meta.items() if k not in FILE_META}
            np.savez(fh, cube=np.asarray(cube.data), wavelengths=cube.wavelengths, meta=json.dumps(meta, default=json_value))
        else:
            np.save(fh, np.ascontiguousarray(cube.data))
    return [path]
