"""Band grids and spectral resampling: the one place where spectra change wavelength grid.

Everything that needs another grid (calibration 204 -> 31 bands, a CSS resampled to a cube's
bands, material spectra for scene synthesis) builds a resampling matrix here and applies it as
one matrix product over the last axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import HsError, check_positive

METHODS = ("linear", "gaussian", "triangular")
#: a grid longer than this is a typo (e.g. a step in um given as nm), not a spectrometer
MAX_BANDS = 100_000


def parse_band_grid(text: str) -> np.ndarray:
    """``"400:700:10"`` -> 400, 410, ..., 700 (end inclusive); ``"450,550,650"`` -> those values.

    >>> parse_band_grid("400:700:10").size
    31
    """
    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not np.isfinite([start, stop, step]).all() or step <= 0 or stop < start:
                raise ValueError
            n = int(np.floor((stop - start) / step + 1e-9)) + 1
            if n > MAX_BANDS:
                raise HsError(f"band grid '{text}' has {n} bands (at most {MAX_BANDS})")
            return start + step * np.arange(n)
        values = np.array([float(v) for v in text.split(",") if v.strip()])
    except ValueError:
        raise HsError(f"band grid '{text}' is not START:STOP:STEP or a comma list of nm") from None
    if values.size == 0 or not np.isfinite(values).all() or np.any(np.diff(values) <= 0):
        raise HsError(f"band grid '{text}' must list increasing, finite wavelengths")
    return values


def target_grid(bands: Any) -> np.ndarray | None:
    """A target band grid as options give it: ``"400:700:10"``, a comma list, an array of nm, or
    ``None`` / ``"none"`` / ``"all"`` / ``"native"`` for the source's own grid (``None``)."""
    if bands is None:
        return None
    if isinstance(bands, str):
        return None if bands.strip().lower() in ("none", "all", "native") else parse_band_grid(bands)
    return np.asarray(bands, dtype=np.float64).reshape(-1)


def check_method(method: str, fwhm: float | None = None) -> None:
    """Resampling options checked before any data: a known method, and ``fwhm`` a positive width
    given only to the integrating methods (``linear`` has none)."""
    if method not in METHODS:
        raise HsError(f"unknown resampling method '{method}' (use {', '.join(METHODS)})")
    check_positive(fwhm, "fwhm")
    if fwhm is not None and method == "linear":
        raise HsError("fwhm is the width of the gaussian or triangular method; linear has none")


def default_fwhm(src: np.ndarray, dst: np.ndarray) -> float:
    """The integrating methods' response width when none is given: the target grid's step (the
    source's for a single target band)."""
    grid = np.asarray(dst if np.size(dst) > 1 else src, dtype=np.float64).reshape(-1)
    return float(np.median(np.diff(grid)))


def resampling_matrix(
    src: np.ndarray,
    dst: np.ndarray,
    method: str = "linear",
    fwhm: float | None = None,
    extrapolate: bool = False,
) -> np.ndarray:
    """Matrix ``M`` (len(src), len(dst)) with ``spectra_dst = spectra_src @ M``.

    - ``linear``: interpolation at the target band centres (what the NTIRE organisers' own
      resampling utility does).
    - ``gaussian`` / ``triangular``: band integration with a response of full width at half
      maximum ``fwhm`` (default: the target grid's step) centred on each target band, weighted by
      the source bands' widths and normalised to unit sum, so a flat spectrum stays flat.

    A target outside the source range is refused unless ``extrapolate`` (then the edge value is
    held for ``linear``; the truncated response is renormalised for the integrating methods).
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1)
    check_method(method, fwhm)
    if src.size < 2:
        raise HsError("resampling needs at least two source bands")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()) or np.any(np.diff(src) <= 0):
        raise HsError("source wavelengths must increase strictly and all wavelengths be finite")
    tol = 1e-6 * max(1.0, abs(src[-1]))
    outside = (dst < src[0] - tol) | (dst > src[-1] + tol)
    if outside.any() and not extrapolate:
        raise HsError(
            f"target bands {dst[outside].min():g}-{dst[outside].max():g} nm lie outside the source range "
            f"{src[0]:g}-{src[-1]:g} nm (extrapolation not requested)"
        )
    m = np.zeros((src.size, dst.size))
    if method == "linear":
        pos = np.clip(dst, src[0], src[-1])
        hi = np.clip(np.searchsorted(src, pos, side="right"), 1, src.size - 1)
        lo = hi - 1
        t = (pos - src[lo]) / (src[hi] - src[lo])
        cols = np.arange(dst.size)
        m[lo, cols] += 1 - t
        m[hi, cols] += t
        return m
    if fwhm is None:
        fwhm = default_fwhm(src, dst)
    edges = np.concatenate([[src[0]], (src[1:] + src[:-1]) / 2, [src[-1]]])
    widths = np.diff(edges)  # trapezoid weights of the source samples
    d = src[:, None] - dst[None, :]
    if method == "gaussian":
        sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
        r = np.exp(-0.5 * (d / sigma) ** 2)
    else:
        r = np.clip(1 - np.abs(d) / fwhm, 0, None)
    w = r * widths[:, None]
    sums = w.sum(axis=0)
    if np.any(sums <= 0):
        raise HsError("a target band has no source band inside its response; widen fwhm")
    return w / sums


def resample_bands(
    data: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    method: str = "linear",
    fwhm: float | None = None,
    extrapolate: bool = False,
) -> np.ndarray:
    """Resample spectra along the last axis from grid ``src`` to grid ``dst`` (see
    :func:`resampling_matrix`). Returns float32 for float32 input, float64 otherwise.

    A NaN or infinite source value makes NaN only the target bands that weigh it (a dead band
    of a calibrated capture spoils its neighbours, not the whole spectrum, as ``NaN x 0`` would).
    """
    m = resampling_matrix(src, dst, method, fwhm, extrapolate)
    out_dtype = np.float32 if np.asarray(data).dtype == np.float32 else np.float64
    x, mt = np.asarray(data, dtype=out_dtype), m.astype(out_dtype)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x @ mt
    out = np.where(bad, 0, x) @ mt
    # a weight below float32's resolution of its column's largest (a gaussian's far tail) weighs nothing
    weighs = m > np.finfo(np.float32).eps * m.max(axis=0)
    out[(bad.astype(np.float32) @ weighs.astype(np.float32)) > 0] = np.nan
    return out
