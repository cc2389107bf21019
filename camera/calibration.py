"""Specim IQ raw captures to calibrated cubes: reflectance, radiance or dark-subtracted DN.

One pass over the raw scene in blocks of lines; per detector column ``s`` and band ``b``
(references averaged over their lines, see :class:`hstool.hsdata.specim.SpecimCapture`):

- ``reflectance`` (default)::

      R = (raw - dark) / (white - dark)                        white taken with the scene
      R = (raw - dark) / (white - whitedark) * t_white / t     preset white (WHITEDARKREF_)

  ``t`` and ``t_white`` are the scene's and the white reference's integration times (header
  ``tint``); the ratio is 1 when they agree. A denominator <= 0 (a dead or saturated column,
  a white reference darker than the dark) has no answer: those (column, band) cells give
  **NaN** (not 0, which would pass for black) and are counted in ``meta["guarded_cells"]``
  (kept columns) and ``meta["nan_values"]``. When more than ``max_bad_fraction`` of the kept
  cells are guarded the references are wrong (swapped, or the white is missing) and calibration
  refuses with :class:`HsError`.
- ``radiance``, with the camera's radiometric gain file (ENVI ``.cal``, e.g.
  ``Radiometric_1x1.cal``: one line of samples x bands)::

      L = (raw - dark) * G / t          [W m^-2 sr^-1 nm^-1]

  ``G`` in W m^-2 sr^-1 nm^-1 per (DN/ms), ``t`` the integration time in ms. No public Specim
  document fixes this formula; it is the plain linear model (signal rate times gain), stated
  here and tested against itself in ``tests/test_calibrate.py``.
- ``dn``: ``raw - dark`` only (dark-subtracted counts).

Resampling to another band grid (:func:`hstool.hsdata.spectral.resampling_matrix`) is a
matrix ``M``; because the calibration is affine per (column, band), it folds into the same
pass: ``out = (raw * S) @ M - (dark * S) @ M`` with ``S`` the per-cell scale, so the 204-band
float cube is never held in memory. Output is upright (``np.rot90``, rows = detector columns)
with the dropped detector columns removed: 512 x 512 x 204 -> 482 x 512 x 31 by default, the
ARAD layout of the NTIRE 2020 challenge (Arad et al., NTIRE 2020 Challenge on Spectral
Reconstruction from an RGB Image, CVPRW 2020, section 2.1.1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..hsdata import ARAD_WAVELENGTHS, Cube, HsError
from ..hsdata.formats.envi import open_envi
from ..hsdata.specim import IQ_MAX_DN, SpecimCapture
from ..hsdata.spectral import check_method, default_fwhm, resampling_matrix, target_grid

MODES = ("reflectance", "radiance", "dn")
#: Columns dropped at each edge by default, for a 512-column sensor (scaled for others).
CHALLENGE_EDGE = 15
#: a reflectance cube whose median is above this was calibrated against a white reference that
#: reads too dark (or with wrong integration times): calibrate warns
TOO_BRIGHT = 1.2
#: a white reference whose median response over the dark is below this (DN of the 12-bit sensor)
#: is hardly lit: a dark frame saved as white, or a lens cap left on (info warns)
DIM_WHITE_DN = 50.0


# -- bad columns ------------------------------------------------------------------------------
def challenge_columns(samples: int = 512) -> list[int]:
    """The default drop list: ``CHALLENGE_EDGE`` detector columns at each end of the slit
    (0-14 and 497-511 of 512), which gives the challenge's 512 -> 482.

    The NTIRE 2020 report says only that 30 "lines (image columns) with excessive interference"
    were removed; *which* 30 is not public. The slit ends are where a push-broom sensor's
    interference and vignetting are worst, so they are dropped; use ``auto`` or an explicit
    list for a camera of your own. Other widths drop ``round(15 * samples / 512)`` per edge."""
    k = round(CHALLENGE_EDGE * samples / 512)
    return list(range(k)) + list(range(samples - k, samples)) if k else []


def parse_columns(spec: str | list[int] | tuple[int, ...] | None, samples: int | None) -> list[int] | str:
    """``"0:15,497:512"`` / ``"3,7,10:12"`` (end-exclusive ranges) / a list -> sorted detector
    columns; ``"none"`` -> []; ``"auto"`` and ``"challenge"`` (``None``) are returned as words.
    ``samples`` None checks the syntax only, else that the columns exist and some are kept."""
    if spec is None:
        return "challenge"
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("auto", "challenge", "default"):
            return "challenge" if text == "default" else text
        if text == "none":
            return []
        if not text:  # an unset shell variable, most likely: say so rather than keep every column
            raise HsError("--drop-columns is empty: use challenge, auto, none, or columns like 0:15,497:512")
        cols: set[int] = set()
        try:
            for part in text.split(","):
                part = part.strip()
                if not part:
                    continue
                a, b = (int(v) for v in part.split(":")) if ":" in part else (int(part), int(part) + 1)
                if not 0 <= a < b:
                    raise ValueError(part)
                cols.update(range(a, b))
            if not cols:
                raise ValueError(text)  # "," names no column: a typo, not "none"
        except ValueError:
            raise HsError(
                f"--drop-columns '{spec}': use challenge, auto, none, or columns like 0:15,497:512 (START < STOP, "
                "from 0)"
            ) from None
    else:
        cols = {int(c) for c in spec}
    out = sorted(cols)
    if samples is None:  # the syntax alone
        return out
    if out and (out[0] < 0 or out[-1] >= samples):
        raise HsError(f"drop columns must lie in 0..{samples - 1} (the capture has {samples} detector columns)")
    if len(out) >= samples:
        raise HsError("drop columns would remove every column")
    return out


def column_features(capture: SpecimCapture) -> dict[str, np.ndarray]:
    """Per detector column statistics (median over bands) from the reference slabs: dark level,
    dark noise and white noise (std over the slab's lines; absent for one-line slabs) and the
    white response (white - dark)."""
    dark, dark_sd = capture.reference_stats("dark")
    white, white_sd = capture.reference_stats("white")
    base = capture.reference_stats("whitedark")[0] if capture.preset_white else dark
    feats = {
        "dark_level": np.median(dark, axis=1),
        "log_response": np.median(np.log(np.clip(white - base, 1.0, None)), axis=1),
    }
    if dark_sd is not None:
        feats["log_dark_noise"] = np.median(np.log(np.clip(dark_sd, 1e-3, None)), axis=1)
    if white_sd is not None:
        feats["log_white_noise"] = np.median(np.log(np.clip(white_sd, 1e-3, None)), axis=1)
    return feats


#: Smallest robust spread assumed per feature (DN for the level, natural-log units otherwise),
#: so a perfectly uniform sensor does not turn a 0.1 % wobble into an outlier.
_SPREAD_FLOOR = {"dark_level": 0.5, "log_response": 0.01, "log_dark_noise": 0.02, "log_white_noise": 0.02}


def local_trend(f: np.ndarray, half: int = 4, exclude: np.ndarray | None = None) -> np.ndarray:
    """What each column's value should be from its neighbours alone: a Theil-Sen line (median of
    pairwise slopes, median intercept; Sen 1968, JASA 63:1379) through the ``2 * half`` nearest
    other columns not in ``exclude``, the window shifted inwards at the edges. Follows smooth
    trends along the slit (vignetting) up to the edges and ignores a minority of bad neighbours."""
    f = np.asarray(f, dtype=np.float64)
    n = f.size
    cols = np.arange(n)
    valid = cols if exclude is None else cols[~np.asarray(exclude, dtype=bool)]
    h = max(1, min(half, (valid.size - 1) // 2))
    if valid.size < 3:
        return np.full(n, np.median(f[valid]) if valid.size else np.median(f))
    pos = np.searchsorted(valid, cols)
    start = np.clip(pos - h, 0, valid.size - 2 * h - 1)
    cand = valid[start[:, None] + np.arange(2 * h + 1)[None, :]]  # (n, 2h+1) nearest valid columns
    dist = np.abs(cand - cols[:, None]).astype(np.float64)
    dist[dist == 0] = np.inf  # never the column itself
    others = np.take_along_axis(cand, np.argsort(dist, axis=1, kind="stable")[:, : 2 * h], axis=1)
    a, b = np.triu_indices(2 * h, k=1)
    x, y = others.astype(np.float64), f[others]
    slope = np.median((y[:, b] - y[:, a]) / (x[:, b] - x[:, a]), axis=1)
    intercept = np.median(y - slope[:, None] * x, axis=1)
    return intercept + slope * cols


def detect_bad_columns(
    capture: SpecimCapture, threshold: float = 8.0, half_window: int = 4
) -> tuple[list[int], dict[str, np.ndarray]]:
    """Detector columns with excessive interference, and the robust z-scores that flagged them.

    Each feature of :func:`column_features` is compared with what its ``2 * half_window``
    neighbouring columns predict (:func:`local_trend`, so vignetting and other smooth trends
    along the slit do not count); the residual is divided by 1.4826 x its median absolute
    deviation over the columns (a robust standard deviation, floored per feature). A column
    whose ``|z|`` exceeds ``threshold`` in any feature is bad: a noisy dark or white frame, a
    weak or hot response, or an offset unlike its neighbours'. The trends are refitted without
    the columns found (up to three rounds), so a cluster of bad columns at the slit's end does
    not drag its good neighbours along."""
    feats = column_features(capture)
    n = capture.samples
    flagged = np.zeros(n, dtype=bool)
    zs: dict[str, np.ndarray] = {}
    if n < 3:
        return [], zs
    for _ in range(3):
        new = np.zeros(n, dtype=bool)
        for name, f in feats.items():
            resid = f - local_trend(f, half_window, exclude=flagged)
            ref = resid[~flagged] if (~flagged).sum() >= 3 else resid
            centre = float(np.median(ref))
            spread = max(1.4826 * float(np.median(np.abs(ref - centre))), _SPREAD_FLOOR[name])
            zs[name] = (resid - centre) / spread
            new |= np.abs(zs[name]) > threshold
        if np.array_equal(new, flagged):
            break
        flagged = new
    return [int(c) for c in np.flatnonzero(flagged)], zs


# -- calibration ------------------------------------------------------------------------------
def load_gain(path: str | Path, capture: SpecimCapture) -> np.ndarray:
    """The radiometric gain (samples, bands) float64 from an ENVI ``.cal`` (or its ``.hdr``),
    averaged over its lines, checked against the capture's samples, bands and wavelengths."""
    path = Path(path)
    if path.suffix.lower() == ".hdr":
        cal = path.with_suffix(".cal")
        path = cal if cal.is_file() else path
    view, wl, _, _ = open_envi(path)
    if view.shape[1:] != (capture.samples, capture.bands):
        raise HsError(
            f"gain file is {view.shape[1]} samples x {view.shape[2]} bands, the capture "
            f"{capture.samples} x {capture.bands}",
            path,
        )
    if wl is not None and capture.wavelengths is not None and np.abs(wl - capture.wavelengths).max() > 0.01:
        raise HsError("gain file wavelengths differ from the capture's", path)
    gain = np.asarray(view, dtype=np.float64).mean(axis=0)
    return gain


def _block_calibrator(
    scale: np.ndarray, dark: np.ndarray, m: np.ndarray | None, cols: slice | np.ndarray, chunk_lines: int
):
    """A function ``(raw block (n <= chunk_lines, bands, samples), dest (K, n, kept samples)
    float32) -> saturated count`` writing ``((raw - dark) * scale) @ m`` per (sample, band) of
    the kept columns ``cols`` into ``dest`` (any strides: rows of the band-major cube), ``m``
    None = identity.

    Three exact strategies: with a sparse ``m`` (linear interpolation: <= 4 source bands per
    target) one gather reads only those bands, each then multiplied by its folded weight; with
    a dense ``m`` only the band range ``m`` touches enters one BLAS product; without ``m`` the
    scaled cube is written. The offset ``dark * scale @ m`` is subtracted after the product.
    Saturated raw values are counted where they enter the output: kept columns, bands read."""
    offset = dark * scale  # (S, B)
    if m is None:
        scale_bs = np.ascontiguousarray(scale.T[:, None, cols], dtype=np.float32)  # (B, 1, S')
        off_bs = np.ascontiguousarray(offset.T[:, None, cols], dtype=np.float32)

        def identity(raw, dest):
            part = raw[:, :, cols]
            np.multiply(part.transpose(1, 0, 2), scale_bs, out=dest)
            dest -= off_bs
            return _saturated(part)

        return identity
    used = np.flatnonzero(np.any(m != 0, axis=1))
    b0, b1 = int(used[0]), int(used[-1]) + 1
    off_ks = np.ascontiguousarray((offset @ m).T[:, None, cols], dtype=np.float32)  # (K, 1, S')
    nnz = (m != 0).sum(axis=0)
    K = m.shape[1]
    if nnz.max() <= 4:
        order = np.argsort(m == 0, axis=0, kind="stable")[: int(nnz.max())]  # nonzero rows first
        # tap j of target k reads band order[j, k] with weight m * scale (0 past its last tap)
        weights = [
            np.ascontiguousarray(
                ((m[idx, np.arange(K)] * (j < nnz))[:, None] * scale[:, idx].T)[:, None, cols], dtype=np.float32
            )
            for j, idx in enumerate(order)
        ]
        gather = order.reshape(-1)  # every tap's band, tap-major: (taps * K,)
        bands_read = np.unique(order[np.arange(order.shape[0])[:, None] < nnz])
        tmp = np.empty((K, chunk_lines, off_ks.shape[2]), dtype=np.float32)

        def sparse(raw, dest):
            n = raw.shape[0]
            per_tap = raw[:, gather, :].transpose(1, 0, 2)[:, :, cols]  # (taps * K, n, S')
            rest = tmp[:, :n]  # every tap but the first, less the offset
            if len(weights) > 1:
                np.multiply(per_tap[K : 2 * K], weights[1], out=rest)
                rest -= off_ks
            else:
                np.negative(off_ks, out=rest)
            for j in range(2, len(weights)):
                rest += np.multiply(per_tap[j * K : (j + 1) * K], weights[j], out=dest)
            np.multiply(per_tap[:K], weights[0], out=dest)
            dest += rest
            if per_tap.max() < IQ_MAX_DN:  # usually; else count each band read once
                return 0
            return _saturated(raw[:, bands_read][:, :, cols])

        return sparse
    scale_used = np.ascontiguousarray(scale.T[b0:b1, cols], dtype=np.float32)  # (b, S')
    m32t = np.ascontiguousarray(m[b0:b1].T, dtype=np.float32)  # (K, b)

    def dense(raw, dest):
        part = raw[:, b0:b1, cols]
        y = np.multiply(part, scale_used, dtype=np.float32)  # (n, b, S')
        np.subtract(np.matmul(m32t, y).transpose(1, 0, 2), off_ks, out=dest)
        return _saturated(part)

    return dense


def _saturated(raw: np.ndarray) -> int:
    if raw.dtype.kind not in "ui" or raw.size == 0 or raw.max() < IQ_MAX_DN:  # one pass, no mask, usually
        return 0
    return int(np.count_nonzero(raw >= IQ_MAX_DN))


def check_options(to: str, method: str, fwhm: float | None, gain: Any, max_bad_fraction: float = 0.25) -> None:
    """The options of :func:`calibrate` that need no capture, checked before any work: a mode,
    ``fwhm`` only for the integrating methods, a gain only for radiance."""
    if to not in MODES:
        raise HsError(f"unknown calibration mode '{to}' (use {', '.join(MODES)})")
    check_method(method, fwhm)
    if gain is not None and to != "radiance":
        raise HsError(f"a gain is used for radiance, not {to}")
    if not 0 <= max_bad_fraction <= 1:
        raise HsError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")


def calibrate(
    capture: SpecimCapture | str | Path,
    to: str = "reflectance",
    drop_columns: str | list[int] | None = None,
    bands: np.ndarray | str | None = ARAD_WAVELENGTHS,
    method: str = "linear",
    fwhm: float | None = None,
    extrapolate: bool = False,
    gain: str | Path | np.ndarray | None = None,
    max_bad_fraction: float = 0.25,
    chunk_lines: int = 16,
) -> Cube:
    """Calibrate a Specim IQ capture (see the module docstring for the formulas).

    Parameters
    ----------
    capture: a :class:`SpecimCapture` or its folder.
    to: ``reflectance`` (default), ``radiance`` or ``dn``.
    drop_columns: detector columns (raw samples = upright rows) to remove: ``None``/
        ``"challenge"`` (default, :func:`challenge_columns`), ``"auto"``
        (:func:`detect_bad_columns`), ``"none"``, a spec like ``"0:15,497:512"`` or a list.
    bands: target band grid in nm (default ARAD's 400:10:700; a ``"400:700:10"`` string works);
        ``None`` keeps the sensor's bands.
    method, fwhm, extrapolate: resampling (``linear`` at band centres as the organisers'
        utility does, or ``gaussian``/``triangular`` band integration of width ``fwhm``,
        default the target step); no target outside the sensor's range unless ``extrapolate``.
    gain: radiometric gain for ``radiance`` (``.cal`` path or a (samples, bands) array);
        default the ``.cal`` found in the capture folder.

    Returns an upright float32 Cube, ``meta`` holding units, mode, source, tint_ms, date,
    dropped_columns, guarded_cells, nan_values, saturated_values, white_saturated_cells (kept
    (column, band) cells where the white reference reached the top code; reflectance), the
    formula used and ``warnings``: sentences on what makes the result doubtful (parts taken at
    different integration times, a missing one the white-to-scene ratio needs, a rotation the
    camera recorded, a median reflectance above :data:`TOO_BRIGHT`).

    >>> cube = calibrate("captures/444")                    # doctest: +SKIP
    >>> cube.shape                                          # doctest: +SKIP
    (482, 512, 31)
    """
    check_options(to, method, fwhm, gain, max_bad_fraction)
    if chunk_lines < 1:
        raise HsError(f"chunk_lines must be >= 1, got {chunk_lines}")
    cap = capture if isinstance(capture, SpecimCapture) else SpecimCapture.open(capture)
    if cap.wavelengths is None:
        raise HsError("raw header has no wavelength list", cap.scene.path)
    src_wl = np.asarray(cap.wavelengths, dtype=np.float64)
    S, B, L = cap.samples, cap.bands, cap.lines

    dst_wl = target_grid(bands)  # checked before any reading
    m = None if dst_wl is None else resampling_matrix(src_wl, dst_wl, method, fwhm, extrapolate)
    out_wl = src_wl if m is None else dst_wl
    K = out_wl.size

    rule = parse_columns(drop_columns, S)
    zscores = None
    if rule == "challenge":
        dropped, rule_name = challenge_columns(S), "challenge default (slit ends; the challenge's list is not public)"
    elif rule == "auto":
        dropped, zscores = detect_bad_columns(cap)
        rule_name = "auto (robust z-score of reference statistics)"
    else:
        dropped, rule_name = list(rule), "explicit"
    keep = np.setdiff1d(np.arange(S), dropped)
    if keep.size == 0:
        raise HsError("every detector column would be dropped", cap.root)

    dark, _ = cap.reference_stats("dark", std=False)
    meta: dict[str, Any] = {}
    warnings = cap.warnings()
    if to == "dn":
        scale = np.ones((S, B))
        bad = np.zeros((S, B), dtype=bool)
        formula = "raw - dark"
    elif to == "reflectance":
        white, _ = cap.reference_stats("white", std=False)
        base = cap.reference_stats("whitedark", std=False)[0] if cap.preset_white else dark
        denom = white - base
        t_scene, t_white = cap.tint_ms, cap.white_tint_ms  # the scene's from its header or metadata XML
        ratio = t_white / t_scene if (t_scene and t_white) else 1.0
        if bool(t_scene) != bool(t_white) or (cap.preset_white and not (t_scene or t_white)):
            which = "white reference" if t_scene else "scene"
            warnings.append(f"the {which} records no integration time (tint): the white-to-scene exposure "
                            "ratio is taken as 1, so reflectance is off by that ratio if they differed")
        bad = ~(denom > 0)
        frac = float(bad[keep].mean())
        if frac > max_bad_fraction:
            ref = cap.white.path
            raise HsError(
                f"white reference is not above the {'white-dark' if cap.preset_white else 'dark'} reference "
                f"in {100 * frac:.0f}% of (column, band) cells: references swapped or the white is missing",
                ref,
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(bad, 0.0, ratio / denom)
        # a white panel the sensor clipped averages too low, and the reflectance there reads too high
        white_clipped = cap.saturated_cells("white") & ~bad
        used = np.ones(B, bool) if m is None else np.any(m != 0, axis=1)
        meta["white_saturated_cells"] = int(white_clipped[keep][:, used].sum())
        formula = (
            "(raw - dark) / (white - whitedark) * tint_white / tint"
            if cap.preset_white
            else "(raw - dark) / (white - dark)" + (" * tint_white / tint" if ratio != 1.0 else "")
        )
        meta["tint_ratio"] = ratio
    else:
        if gain is None:
            gain = cap.gain_path
        if gain is None:
            raise HsError("radiance needs the camera's radiometric gain file (.cal); pass --gain", cap.root)
        g = load_gain(gain, cap) if isinstance(gain, (str, Path)) else np.asarray(gain, dtype=np.float64)
        if g.shape != (S, B):
            raise HsError(f"gain must be (samples, bands) = ({S}, {B}), got {g.shape}")
        if not cap.tint_ms:
            raise HsError("radiance needs the integration time (header 'tint' or metadata)", cap.scene.path)
        bad = ~np.isfinite(g)
        scale = np.where(bad, 0.0, g) / cap.tint_ms
        formula = "(raw - dark) * gain / tint_ms"
        meta["gain_file"] = str(gain) if isinstance(gain, (str, Path)) else "array"

    # band-major (K, L, kept samples): each block of sensor lines is written in as whole rows, and
    # the upright (rows = detector columns, L, K) cube is a view of it with the memory layout of
    # a MATLAB v7.3 / ARAD file, which is therefore written without a transpose
    band_major = np.empty((K, L, keep.size), dtype=np.float32)
    # (lines, bands, samples): the file's own order; a plain ndarray view of the mapping, which
    # slices without np.memmap's Python-level __getitem__
    bil = np.asarray(cap.scene.view).transpose(0, 2, 1)
    # a contiguous run of kept columns (the default: the slit ends dropped) is a slice, not a gather
    cols = slice(int(keep[0]), int(keep[-1]) + 1) if keep[-1] - keep[0] + 1 == keep.size else keep
    block = _block_calibrator(scale, dark, m, cols, chunk_lines)
    saturated = 0
    for l0 in range(0, L, chunk_lines):
        l1 = min(L, l0 + chunk_lines)
        # upright column L-1-l holds sensor line l: the block is read in reverse (writing to
        # reversed rows instead is slower)
        saturated += block(bil[l0:l1][::-1], band_major[:, L - l1 : L - l0])
    result = band_major.transpose(2, 1, 0)  # (kept samples, L, K)

    bad_k = bad if m is None else (bad.astype(np.float64) @ (m != 0)) > 0  # (S, K)
    rows, ks = np.nonzero(bad_k[keep])
    if rows.size:
        result[rows, :, ks] = np.nan
    if to == "reflectance":
        typical = _typical_value(result)
        if typical > TOO_BRIGHT:
            warnings.append(f"median reflectance is {typical:.2f}, above 1: the white reference reads too dark "
                            "(a dark frame, a shaded panel?) or the integration times are wrong")
    meta.update(cap.describe())
    meta.update(
        units=to,
        mode=to,
        formula=formula,
        orientation="upright = np.rot90(sensor, 3); rows are detector columns (raw samples)",
        dropped_columns=[int(c) for c in dropped],
        drop_rule=rule_name,
        guarded_cells=int(bad[keep].sum()),
        nan_values=int(rows.size) * L,
        saturated_values=saturated,  # raw values at 4095 in the kept columns and bands read
        source_wavelengths=[float(src_wl[0]), float(src_wl[-1]), int(src_wl.size)],
        resampling="none" if m is None else method,
    )
    if m is not None and method != "linear":  # the response width used: given, or the grid's step
        meta["fwhm_nm"] = float(fwhm) if fwhm is not None else default_fwhm(src_wl, dst_wl)
    if zscores is not None:
        meta["auto_max_abs_z"] = {k: float(np.abs(v).max()) for k, v in zscores.items()}
    meta["warnings"] = warnings
    return Cube(result, out_wl, meta)


def _typical_value(cube: np.ndarray) -> float:
    """The median of the finite values of every 16th row and column and 4th band (1/1024 of the
    cube: ~0.1 ms of a 13 ms calibration)."""
    sample = cube[::16, ::16, ::4]
    sample = sample[np.isfinite(sample)]
    return float(np.median(sample)) if sample.size else float("nan")


def describe_capture(capture: SpecimCapture | str | Path) -> dict[str, Any]:
    """What ``hstool info`` says of a Specim IQ capture folder before it is calibrated: its
    metadata (:meth:`SpecimCapture.describe`), band range, the raw values the sensor clipped in
    the scene, every (column, band) cell where the white reference reached the top code (calibrate
    counts those of them its output reads), the
    columns :func:`detect_bad_columns` flags, and the radiometric gain file found, if any."""
    cap = capture if isinstance(capture, SpecimCapture) else SpecimCapture.open(capture)
    wl = np.asarray(cap.wavelengths, dtype=np.float64) if cap.wavelengths is not None else None
    scene = np.asarray(cap.scene.view)
    clipped = 0
    for start in range(0, scene.shape[0], 64):  # blockwise: one raw cube is 100 MB
        clipped += int(np.count_nonzero(scene[start : start + 64] >= IQ_MAX_DN))
    bad, _ = detect_bad_columns(cap)
    meta = cap.describe()
    white, _ = cap.reference_stats("white", std=False)
    base = cap.reference_stats("whitedark" if cap.preset_white else "dark", std=False)[0]
    response = white - base
    not_above = int(np.count_nonzero(~(response > 0)))
    median = float(np.median(response))
    warnings = cap.warnings()
    if not_above > 0.25 * response.size:
        warnings.append(f"the white reference is not above the dark in {100 * not_above / response.size:.0f}% of "
                        "(column, band) cells: references swapped or the white missing (calibrate refuses it)")
    elif median < DIM_WHITE_DN:
        warnings.append(f"the white reference is barely above the dark (median {median:.1f} DN): a dark frame "
                        "saved as white? Reflectance would read far above 1")
    return {
        "path": meta.pop("source"),
        "format": "Specim IQ capture",
        **meta,
        "upright_shape": [cap.samples, cap.lines, cap.bands],  # as calibrate writes it, before dropping columns
        "wavelength_min": float(wl[0]) if wl is not None else None,
        "wavelength_max": float(wl[-1]) if wl is not None else None,
        "scene_saturated_values": clipped,
        # every (column, band) cell; calibrate's white_saturated_cells counts those its output reads
        "white_saturated_cells_all": int(cap.saturated_cells("white").sum()),
        "white_response_median_dn": median,  # white minus its dark, over (column, band) cells
        "white_not_above_dark_cells": not_above,
        "suspect_columns": [int(c) for c in bad],
        "gain_file": str(cap.gain_path) if cap.gain_path else None,
        "warnings": warnings,
    }
