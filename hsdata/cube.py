"""The one hyperspectral cube type used by every layer of hstool."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HsError

#: The NTIRE / ARAD band grid: 31 bands, 400-700 nm in 10 nm steps.
ARAD_WAVELENGTHS = np.arange(400.0, 701.0, 10.0)
#: what a reader records about the file it read, not about the cube: never written into another
#: file (an ENVI copy of a .mat cube is no "v7.3"), while units, norm_factor, ... travel with it
FILE_META = frozenset({"format", "source", "mat_version", "interleave", "file_dtype"})
#: ENVI header fields with one value per band (kept in ``meta["envi"]``): true of one band grid only
BAND_FIELDS = frozenset({
    "fwhm", "bbl", "band names", "data gain values", "data offset values", "default bands",
    "data reflectance gain values", "data reflectance offset values",
})


@dataclass
class Cube:
    """A hyperspectral cube.

    Attributes
    ----------
    data:
        Array shaped ``(H, W, B)``; float32 unless a reader was asked to keep the file's type
        (raw sensor counts). May be a memory-mapped or transposed view of the file.
    wavelengths:
        Band centres in nm, shape ``(B,)``, increasing.
    meta:
        Free metadata, JSON-serialisable: ``units`` (``reflectance``, ``radiance``, ``dn``),
        ``norm_factor``, ``source``, ``format``, ...

    Example
    -------
    >>> c = Cube(np.zeros((4, 5, 31), np.float32), ARAD_WAVELENGTHS)
    >>> c.shape
    (4, 5, 31)
    """

    data: np.ndarray
    wavelengths: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.meta is None:
            self.meta = {}
        if not isinstance(self.meta, dict):
            raise HsError(f"a cube's meta is a dict of metadata, not a {type(self.meta).__name__}")
        if not isinstance(self.data, np.ndarray):  # a list or another array-like (a memmap stays one)
            self.data = np.asarray(self.data)
        if self.wavelengths is None:
            raise HsError("a cube needs its band centres (wavelengths in nm), not None", self.meta.get("source"))
        try:
            self.wavelengths = np.asarray(self.wavelengths, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise HsError(f"wavelengths must be numbers (nm), got {self.wavelengths!r:.60}", self.meta.get("source")) from None
        if self.data.ndim != 3:
            raise HsError(f"a cube must be 3-D (H, W, B), got shape {self.data.shape}", self.meta.get("source"))
        if self.data.dtype.kind not in "iufc":  # complex: refused below, by check_real, with its own words
            raise HsError(f"a cube holds numbers, not {self.data.dtype} values", self.meta.get("source"))
        if self.data.size == 0:
            raise HsError(f"cube is empty, shape {self.data.shape}", self.meta.get("source"))
        if self.data.shape[2] != self.wavelengths.size:
            raise HsError(
                f"{self.data.shape[2]} bands but {self.wavelengths.size} wavelengths", self.meta.get("source")
            )
        if not np.all(np.isfinite(self.wavelengths)):
            raise HsError("wavelengths must be finite numbers (nm)", self.meta.get("source"))
        if self.wavelengths.size > 1 and np.any(np.diff(self.wavelengths) <= 0):
            raise HsError("wavelengths must increase strictly", self.meta.get("source"))
        check_real(self.data, self.meta.get("source"))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def height(self) -> int:
        return self.data.shape[0]

    @property
    def width(self) -> int:
        return self.data.shape[1]

    @property
    def bands(self) -> int:
        return self.data.shape[2]

    def with_data(self, data: np.ndarray, wavelengths: np.ndarray | None = None, **meta: Any) -> Cube:
        """A new cube with other data (and optionally another band grid), metadata carried over
        (on another grid, less the ENVI header's per-band fields: their widths, names and flags
        described the old bands)."""
        merged = {**self.meta, **meta}
        envi = merged.get("envi")
        if wavelengths is not None and isinstance(envi, dict) and not np.array_equal(
            np.asarray(wavelengths, np.float64).reshape(-1), self.wavelengths
        ):
            merged["envi"] = {k: v for k, v in envi.items() if k not in BAND_FIELDS}
        return Cube(data, self.wavelengths if wavelengths is None else wavelengths, merged)


def json_value(value: Any) -> Any:
    """``json.dumps``'s ``default`` for metadata: numpy scalars and arrays as Python numbers and
    lists, anything else (a path, ...) as its text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def check_real(data: np.ndarray, path: str | Path | None = None, what: str = "cube") -> None:
    """Refuse complex data (readers call this before casting, which would drop the imaginary part)."""
    if np.iscomplexobj(data):
        raise HsError(f"{what} holds complex values ({np.asarray(data).dtype}), not intensities", path)


def as_type(data: np.ndarray, dtype, path: str | Path | None = None, copy: bool = False) -> np.ndarray:
    """``data`` as the float type ``dtype`` (``copy``: always a private, writable, C-ordered array,
    never a file's read-only mapping). Values beyond that type's range (a float64 file's 1e300 read
    as float32) are refused, not turned into ``inf``."""
    target = np.dtype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(data, dtype=target, order="C") if copy else np.asarray(data).astype(target, copy=False)
    source = np.asarray(data)
    if target.kind == "f" and source.dtype.kind == "f" and source.dtype.itemsize > target.itemsize \
            and np.isinf(out).any() and np.count_nonzero(np.isinf(out)) > np.count_nonzero(np.isinf(source)):
        top = np.abs(source[np.isfinite(source)]).max()
        raise HsError(f"values up to {top:.3g} do not fit {target} (largest {np.finfo(target).max:.3g}): "
                      "not read as inf", path)
    return out


def default_wavelengths(bands: int) -> np.ndarray | None:
    """The band grid assumed for a file that stores none: ARAD's 400:10:700 for 31 bands."""
    return ARAD_WAVELENGTHS.copy() if bands == ARAD_WAVELENGTHS.size else None
