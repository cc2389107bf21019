"""The challenge metrics on ``(H, W, B)`` arrays: one whole-image value and one per-pixel map each.

Semantics follow the organisers first (NTIRE 2020 report, Arad et al., CVPRW 2020, Sec. 2.2, and
the NTIRE 2022 scoring code): MRAE is ``mean(|gt - rec| / gt)`` over every pixel and band with no
epsilon and no masking, so a zero in the ground truth makes it infinite. :func:`gt_zeros` counts
such zeros so a caller can say why; ``eps=`` or ``ignore_zeros=True`` give the guarded variants.
A negative ground-truth value would make its relative error negative and lower the score, so every
relative error (MRAE, its map, the weighted and back-projection MRAE) refuses one
(:class:`NegativeGroundTruth`); RMSE, PSNR, SAM and SSIM are defined for any real values.

* MRAE, RMSE: challenge report, eqs. (1)-(2).
* PSNR: ``10 log10(peak² / MSE)`` with ``peak = 1`` (cubes normalised to [0, 1], as MST++'s code).
* SAM: spectral angle (Kruse et al. 1993), radians, cosine clipped to [-1, 1].
* SSIM: Wang et al., IEEE TIP 13(4) 2004 — Gaussian window σ = 1.5 (11 taps), K1 = 0.01,
  K2 = 0.03, population covariances, computed per band and averaged; the whole-image value
  averages the map away from a 5-pixel border (what ``skimage.metrics.structural_similarity``
  gives with ``gaussian_weights=True, use_sample_covariance=False``).
* Physical consistency (challenge report Sec. 3.4): project spectra to RGB with the camera's linear
  map ``matrix`` (B, 3) (``Pipeline.matrix(wavelengths)``) and take the MRAE against the
  projected ground truth (:func:`backprojection_mrae`) or against the input RGB image
  (:func:`rgb_consistency`).

Every function validates its inputs and raises :class:`~hstool.hsdata.HsError` on a shape or band
mismatch and on NaN/inf values, which are reported, never averaged away.
"""

from __future__ import annotations

import numbers

import cv2
import numpy as np

from hstool.hsdata import HsError
from hstool.hsdata.cube import check_real
from hstool.hsdata.errors import check_positive
from hstool.hsdata.formats.image import unit_float

METRICS = ("mrae", "rmse", "psnr", "sam", "ssim")


def _bad_values(arr: np.ndarray) -> str:
    nan = int(np.count_nonzero(np.isnan(arr)))
    inf = int(np.count_nonzero(np.isinf(arr)))
    return ", ".join(p for p in (f"{nan} NaN" if nan else "", f"{inf} inf" if inf else "") if p)


def check_pair(
    pred: np.ndarray, gt: np.ndarray, names: tuple[str, str] = ("prediction", "ground truth")
) -> None:
    """Raise :class:`HsError` unless ``pred`` and ``gt`` are finite arrays of the same shape.

    The last axis is the band (or channel) axis; a mismatch there is reported as a band mismatch.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    a, b = names
    for arr, name in ((pred, a), (gt, b)):
        if arr.ndim == 0 or arr.dtype.kind not in "biuf":
            raise HsError(f"{name} must be an array of numbers (..., bands), got {arr.dtype} of shape {arr.shape}")
    if pred.ndim != gt.ndim or pred.shape[:-1] != gt.shape[:-1]:
        raise HsError(f"shape mismatch: {a} {tuple(pred.shape)} vs {b} {tuple(gt.shape)}")
    if pred.shape[-1] != gt.shape[-1]:
        raise HsError(f"band mismatch: {a} has {pred.shape[-1]} bands, {b} {gt.shape[-1]}")
    if pred.size == 0:
        raise HsError(f"empty arrays: {a} {tuple(pred.shape)}")
    check_finite(pred, a)
    check_finite(gt, b)


def check_finite(arr: np.ndarray, name: str = "prediction") -> None:
    """Raise :class:`HsError` naming how many NaN/inf values ``arr`` holds, if any."""
    arr = np.asarray(arr)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise HsError(f"{name} contains {_bad_values(arr)} values; refusing to score it")


def _pair(
    pred: np.ndarray, gt: np.ndarray, names=("prediction", "ground truth")
) -> tuple[np.ndarray, np.ndarray]:
    """Validated arrays in a common float type (float32 cubes stay float32; means accumulate in float64)."""
    for arr, name in zip((pred, gt), names):
        if hasattr(arr, "wavelengths") and hasattr(arr, "data"):  # a Cube: its values are what is compared
            raise HsError(f"{name}: pass the cube's values (cube.data), not the Cube")
        check_real(arr, what=name)
    check_pair(pred, gt, names)
    dtype = np.result_type(np.asarray(pred).dtype, np.asarray(gt).dtype, np.float32)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64
    return np.asarray(pred, dtype), np.asarray(gt, dtype)


class NegativeGroundTruth(HsError):
    """A ground truth with negative values given to a relative error (MRAE and its variants)."""


def check_nonnegative(gt: np.ndarray) -> None:
    """Raise :class:`NegativeGroundTruth` if ``gt`` holds a negative value.

    ``|gt - pred| / gt`` is negative there and would silently lower the mean. Calibrated captures
    read ``0 ± noise`` in dark bands; they are not clipped here (unlike ``hstool simulate``'s 5 %
    noise rule), because a clipped value is a zero and changes the MRAE: the caller clips on
    request (``clip_negative`` / ``--clip-negative``) and the zeros then follow ``eps`` /
    ``ignore_zeros``.
    """
    gt = np.asarray(gt)
    lo = float(np.min(gt)) if gt.size else 0.0
    if lo < 0:
        n = int(np.count_nonzero(gt < 0))
        raise NegativeGroundTruth(
            f"ground truth has {n} negative values (min {lo:.4g}): relative errors are undefined there; "
            "clip_negative / --clip-negative sets them to 0 (never done silently: it changes the MRAE), "
            "and those zeros then need eps or ignore_zeros (--eps, --ignore-zeros) for a finite MRAE"
        )


def gt_zeros(gt: np.ndarray) -> int:
    """How many entries of ``gt`` are zero (each makes the organisers' MRAE infinite)."""
    return int(np.count_nonzero(np.asarray(gt) == 0))


def check_guard(eps, ignore_zeros: bool) -> None:
    """The MRAE's guard against ground-truth zeros is one of ``eps`` and ``ignore_zeros``: with
    both, eps alone would act and the other would be ignored without a word."""
    if eps is not None and ignore_zeros:
        raise HsError("eps and ignore_zeros (--eps, --ignore-zeros) are two guards against zeros: give one")
    if eps is not None and np.asarray(eps).dtype.kind not in "iuf":
        raise HsError(f"eps is a number (or one per band) >= 0, not {eps!r}")


def _relative(pred: np.ndarray, gt: np.ndarray, eps: float | None, ignore_zeros: bool) -> np.ndarray:
    """``|gt - pred| / gt`` entrywise; NaN marks masked entries when ``ignore_zeros``. A negative
    ``gt`` is refused (:func:`check_nonnegative`), with or without a guard."""
    check_guard(eps, ignore_zeros)
    check_nonnegative(gt)
    diff = np.abs(gt - pred)
    if eps is not None:
        if not np.all(np.isfinite(eps) & (np.asarray(eps) >= 0)):  # a number or one per band
            raise HsError(f"eps must be a number >= 0, got {eps}")
        if np.all(np.asarray(eps) > 0):
            return diff / (gt + eps)
        with np.errstate(divide="ignore", invalid="ignore"):  # eps 0: a zero still reads inf, quietly
            rel = diff / (gt + eps)
        rel[(gt + eps) == 0] = np.inf
        return rel
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / gt
    zero = gt == 0
    if ignore_zeros:
        rel[zero] = np.nan
    else:
        # |x|/0 -> inf; 0/0 (an exact zero predicted) is NaN in the organisers' code: inf here too, so
        # a zero in gt always reads as "undefined without a guard", never as a silent NaN.
        rel[zero] = np.inf
    return rel


def mrae_map(
    pred: np.ndarray, gt: np.ndarray, *, eps: float | None = None, ignore_zeros: bool = False
) -> np.ndarray:
    """Per-pixel MRAE ``mean_b |gt - pred| / gt`` (shape without the band axis).

    ``eps`` divides by ``gt + eps`` instead; ``ignore_zeros`` leaves zero entries of ``gt`` out
    (a pixel whose ground truth is all zero is NaN in the map). A negative value in ``gt`` raises
    :class:`NegativeGroundTruth`.
    """
    pred, gt = _pair(pred, gt)
    rel = _relative(pred, gt, eps, ignore_zeros)
    if ignore_zeros and eps is None:
        with np.errstate(invalid="ignore"):
            count = np.sum(~np.isnan(rel), axis=-1)
            total = np.nansum(rel, axis=-1)
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return rel.mean(axis=-1, dtype=np.float64)


def mrae(pred: np.ndarray, gt: np.ndarray, *, eps: float | None = None, ignore_zeros: bool = False) -> float:
    """Mean relative absolute error over all pixels and bands (challenge report, eq. 1).

    Organisers' semantics by default: no epsilon, so any zero in ``gt`` gives ``inf`` (see
    :func:`gt_zeros`). ``eps`` divides by ``gt + eps``; ``ignore_zeros`` averages only the
    entries where ``gt != 0``. A negative value in ``gt`` raises :class:`NegativeGroundTruth`
    (its relative error would be negative and lower the mean).

    >>> gt = np.full((2, 2, 3), 0.5)
    >>> round(mrae(gt * 1.1, gt), 6)
    0.1
    """
    pred, gt = _pair(pred, gt)
    rel = _relative(pred, gt, eps, ignore_zeros)
    if ignore_zeros and eps is None:
        keep = ~np.isnan(rel)
        if not keep.any():
            raise HsError("ground truth is zero everywhere; MRAE is undefined")
        return float(rel[keep].mean(dtype=np.float64))
    return float(rel.mean(dtype=np.float64))


def mrae_per_band(
    pred: np.ndarray, gt: np.ndarray, *, eps: float | None = None, ignore_zeros: bool = False
) -> np.ndarray:
    """:func:`mrae` of each band over all pixels, shape ``(B,)`` (a band whose ground truth is zero
    everywhere is NaN under ``ignore_zeros``). Their mean is :func:`mrae` when no entry is left out."""
    pred, gt = _pair(pred, gt)
    rel = _relative(pred, gt, eps, ignore_zeros).reshape(-1, gt.shape[-1])
    if ignore_zeros and eps is None:
        with np.errstate(invalid="ignore"):
            count = np.sum(~np.isnan(rel), axis=0)
            return np.where(count > 0, np.nansum(rel, axis=0) / np.maximum(count, 1), np.nan)
    return rel.mean(axis=0, dtype=np.float64)


def rmse_per_band(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """:func:`rmse` of each band over all pixels, shape ``(B,)``."""
    pred, gt = _pair(pred, gt)
    return np.sqrt(_sq(pred, gt).reshape(-1, gt.shape[-1]).mean(axis=0, dtype=np.float64))


def _sq(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    d = gt - pred
    d *= d
    return d


def rmse_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel RMSE over the bands."""
    pred, gt = _pair(pred, gt)
    return np.sqrt(_sq(pred, gt).mean(axis=-1, dtype=np.float64))


def rmse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Root mean square error over all pixels and bands (challenge report, eq. 2)."""
    pred, gt = _pair(pred, gt)
    return float(np.sqrt(_sq(pred, gt).mean(dtype=np.float64)))


def _psnr(mse, peak: float):
    check_positive(peak, "peak")
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak**2 / mse)


def psnr_map(pred: np.ndarray, gt: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Per-pixel PSNR in dB over the bands (``inf`` where the spectrum is exact)."""
    pred, gt = _pair(pred, gt)
    return _psnr(_sq(pred, gt).mean(axis=-1, dtype=np.float64), peak)


def psnr(pred: np.ndarray, gt: np.ndarray, peak: float = 1.0) -> float:
    """``10 log10(peak² / MSE)`` in dB over the whole cube; ``inf`` for identical cubes. ``peak``
    must be a positive number (an :class:`HsError` otherwise)."""
    pred, gt = _pair(pred, gt)
    return float(_psnr(_sq(pred, gt).mean(dtype=np.float64), peak))


def sam_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel spectral angle in radians (cosine clipped to [-1, 1]).

    Two zero spectra have angle 0; a zero spectrum against a non-zero one has angle π/2.
    """
    pred, gt = _pair(pred, gt)
    dot = np.einsum("...b,...b->...", pred, gt, dtype=np.float64)
    norms = np.sqrt(np.einsum("...b,...b->...", pred, pred, dtype=np.float64)) * np.sqrt(
        np.einsum("...b,...b->...", gt, gt, dtype=np.float64)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    both_zero = ~np.any(pred, axis=-1) & ~np.any(gt, axis=-1)
    cos = np.where(both_zero, 1.0, cos)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def sam(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean spectral angle in radians over all pixels."""
    return float(sam_map(pred, gt).mean())


SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy's Gaussian radius int(3.5 * 1.5 + 0.5) = 5 -> an 11-tap window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_blur(a: np.ndarray) -> np.ndarray:
    """Gaussian blur over H and W, band by band: OpenCV's 11-tap kernel equals scipy's
    ``gaussian_filter(sigma=1.5, truncate=3.5, mode='reflect')`` and is ~6x faster
    (at most 128 channels a call)."""
    size = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
    out = np.empty_like(a)
    for i in range(0, a.shape[2], 128):
        chunk = np.ascontiguousarray(a[:, :, i : i + 128])
        blurred = cv2.GaussianBlur(chunk, (size, size), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)
        out[:, :, i : i + 128] = blurred.reshape(chunk.shape)
    return out


def _ssim_band_maps(pred: np.ndarray, gt: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM map per band, shape (H, W, B) (Wang et al. 2004, eq. 13, Gaussian-weighted statistics)."""
    if pred.ndim != 3:
        raise HsError(f"SSIM needs (H, W, B) cubes, got shape {pred.shape}")
    check_positive(data_range, "data_range")
    mx, my = _gaussian_blur(pred), _gaussian_blur(gt)
    vx = _gaussian_blur(pred * pred) - mx * mx
    vy = _gaussian_blur(gt * gt) - my * my
    cxy = _gaussian_blur(pred * gt) - mx * my
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim_map(pred: np.ndarray, gt: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-pixel SSIM averaged over the bands, shape (H, W)."""
    pred, gt = _pair(pred, gt)
    return _ssim_band_maps(pred, gt, data_range).mean(axis=-1, dtype=np.float64)


def ssim(pred: np.ndarray, gt: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM over bands (each band's map averaged away from a 5-pixel border, as scikit-image)."""
    pred, gt = _pair(pred, gt)
    maps = _ssim_band_maps(pred, gt, data_range)
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    h, w = maps.shape[:2]
    if h > 2 * pad and w > 2 * pad:
        maps = maps[pad : h - pad, pad : w - pad]
    return float(maps.mean(dtype=np.float64))


def _check_matrix(matrix: np.ndarray, bands: int) -> np.ndarray:
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != bands:
        raise HsError(f"projection matrix must be ({bands}, C) for {bands}-band spectra, got {matrix.shape}")
    return matrix


def project(cube: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Spectra ``(..., B)`` to camera values ``(..., C)`` through the linear map ``matrix`` (B, C)."""
    cube = np.asarray(cube, np.float64)
    return cube @ _check_matrix(matrix, cube.shape[-1])


def backprojection_mrae(
    pred: np.ndarray,
    gt: np.ndarray,
    matrix: np.ndarray,
    *,
    eps: float | None = None,
    ignore_zeros: bool = False,
) -> float:
    """MRAE between ``gt @ matrix`` and ``pred @ matrix``: do the two cubes give the same RGB?
    (A negative projected ground truth raises :class:`NegativeGroundTruth`.)"""
    pred, gt = _pair(pred, gt)
    matrix = _check_matrix(matrix, gt.shape[-1])
    try:
        return mrae(pred @ matrix, gt @ matrix, eps=eps, ignore_zeros=ignore_zeros)
    except NegativeGroundTruth as exc:
        raise NegativeGroundTruth(f"projected {exc.message}") from None


def image_units(rgb: np.ndarray) -> np.ndarray:
    """An input image in [0, 1], the units the camera model writes: uint8/uint16 codes divided by
    their full scale (as :func:`hstool.hsdata.read_rgb` reads files), floats as they are."""
    rgb = np.asarray(rgb)
    if rgb.dtype.kind in "ui" and rgb.dtype not in (np.uint8, np.uint16):
        raise HsError(f"integer images are uint8 or uint16 codes, not {rgb.dtype}: give those, or floats in [0, 1]")
    return unit_float(rgb) if rgb.dtype.kind in "ui" else rgb


def rgb_consistency(
    pred: np.ndarray,
    rgb: np.ndarray,
    matrix: np.ndarray,
    *,
    eps: float | None = None,
    ignore_zeros: bool | None = None,
) -> float:
    """Physical consistency (challenge report Sec. 3.4, Table 3 "Physical"): MRAE between the RGB
    re-generated from ``pred`` (``pred @ matrix``) and the input RGB image ``rgb`` (H, W, 3), in
    [0, 1] or as uint8/uint16 codes (:func:`image_units`).

    Input images are quantised, so dark pixels hold exact zeros; those entries are left out unless
    ``eps`` guards them instead (``ignore_zeros`` None: ``eps is None``; ``False`` gives the
    unguarded, possibly infinite, value).
    """
    if ignore_zeros is None:
        ignore_zeros = eps is None
    pred = np.asarray(pred)
    rgb = image_units(rgb)
    if pred.shape[:-1] != rgb.shape[:-1]:
        raise HsError(f"shape mismatch: prediction {tuple(pred.shape)} vs RGB image {tuple(rgb.shape)}")
    check_finite(pred)
    back = project(pred, matrix)
    check_pair(back, rgb, ("re-projected prediction", "RGB image"))
    return mrae(back, rgb, eps=eps, ignore_zeros=ignore_zeros)


def crop(arr: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels from each side of an (H, W, ...) array (NTIRE 2022 scores with 128)."""
    if isinstance(border, bool) or not isinstance(border, numbers.Integral) or border < 0:
        raise HsError(f"a crop is a whole number of pixels >= 0, not {border!r}")
    if border == 0:
        return arr
    h, w = arr.shape[:2]
    if 2 * border >= min(h, w):
        raise HsError(f"a crop of {border} px leaves nothing of a {h}×{w} image")
    return arr[border : h - border, border : w - border]


def score(
    pred: np.ndarray,
    gt: np.ndarray,
    metrics: tuple[str, ...] = ("mrae", "rmse", "psnr", "sam"),
    *,
    eps: float | None = None,
    ignore_zeros: bool = False,
    data_range: float = 1.0,
) -> dict[str, float]:
    """Several metrics of one pair at once, by name (see :data:`METRICS`; one name may be a string).
    ``data_range`` is the value range: SSIM's, and PSNR's peak."""
    if isinstance(metrics, str):  # "mrae", not the letters m, r, a, e
        metrics = (metrics,)
    _pair(pred, gt)
    out: dict[str, float] = {}
    for name in metrics:
        if name == "mrae":
            out[name] = mrae(pred, gt, eps=eps, ignore_zeros=ignore_zeros)
        elif name == "rmse":
            out[name] = rmse(pred, gt)
        elif name == "psnr":
            out[name] = psnr(pred, gt, peak=data_range)
        elif name == "sam":
            out[name] = sam(pred, gt)
        elif name == "ssim":
            out[name] = ssim(pred, gt, data_range=data_range)
        else:
            raise HsError(f"unknown metric '{name}' (known: {', '.join(METRICS)})")
    return out
