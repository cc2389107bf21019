"""Synthetic Specim IQ captures with a known answer, for tests, benchmarks and demos.

:func:`write_synthetic_capture` writes a capture folder laid out and headed as the camera
writes one (see :mod:`hstool.hsdata.specim`): 12-bit DN as uint16 BIL, the IQ's 204 band
centres, dark and white reference slabs, ``metadata/NAME.xml`` and ``manifest.xml``, and on
request a preset white reference (``WHITEDARKREF_``) and a radiometric gain file (``.cal``).

The sensor model, per detector column ``s`` and band ``b`` (integration time ``t`` in ms)::

    dark(t)  = offset[s, b] + dark_current[s, b] * t                 (DN)
    white(t) = dark(t) + rate[s, b] * t                              (DN, the white panel)
    scene    = round(dark(t) + R[s, b, line] * rate[s, b] * t)       (DN, clipped to 4095)

References carry Gaussian read noise (``ref_noise_dn``) and are slabs of ``ref_lines`` lines.
The scene is noise-free apart from 12-bit quantisation unless ``scene_noise_dn`` is given, so a
correct calibration recovers ``R`` to about 1e-4 (quantisation plus reference noise over the
averaged lines) and a test can hold it to 1e-3. ``bad_columns`` get interference: extra dark
noise, a weak and noisy white response and noise in the scene, which the detector in
:mod:`hstool.camera.calibration` must find and which no calibration can undo.

Columns are detector columns (samples of the raw file) = upright rows, as everywhere in hstool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cube import Cube
from .errors import HsError
from .specim import IQ_MAX_DN, IQ_WAVELENGTHS, sensor_orientation
from .spectral import resample_bands


@dataclass
class SyntheticCapture:
    """What was written and the answers a calibration should give."""

    path: Path
    reflectance: Cube  # upright ground truth (rows = detector columns), float32
    bad_columns: list[int]
    dark: np.ndarray  # (samples, bands) expected dark level at the scene's tint, DN
    response: np.ndarray  # (samples, bands) white - dark at the scene's tint, DN
    tint_ms: float
    gain: np.ndarray | None = None  # (samples, bands) radiometric gain written to the .cal
    gain_path: Path | None = None


def iq_wavelengths(bands: int = 204) -> np.ndarray:
    """The IQ's band centres for 204 bands; for another count an even grid over the same range."""
    if bands == IQ_WAVELENGTHS.size:
        return IQ_WAVELENGTHS.copy()
    return np.linspace(IQ_WAVELENGTHS[0], IQ_WAVELENGTHS[-1], bands)


def synthetic_reflectance(
    height: int, width: int, wavelengths: np.ndarray, seed: int = 0, materials: int = 5
) -> np.ndarray:
    """Smooth, strictly positive reflectance (H, W, B) float32 in [0.15, 0.95]: convex mixtures
    of a few material spectra (Gaussian bumps plus a red-edge step) with smoothly varying
    abundances, so every pixel and band differs and a flip or axis swap shows."""
    rng = np.random.default_rng(seed)
    wl = np.asarray(wavelengths, dtype=np.float64)
    x = (wl - wl[0]) / (wl[-1] - wl[0])
    spectra = np.empty((materials, wl.size))
    for k in range(materials):
        s = rng.uniform(0.2, 0.5) + rng.uniform(0, 0.4) / (1 + np.exp(-(wl - rng.uniform(680, 740)) / 15))
        for _ in range(2):
            s += rng.uniform(-0.15, 0.25) * np.exp(-0.5 * ((x - rng.uniform(0, 1)) / rng.uniform(0.05, 0.2)) ** 2)
        lo, hi = s.min(), s.max()
        spectra[k] = 0.15 + 0.8 * (s - lo) / (hi - lo) * rng.uniform(0.5, 1.0)
    yy, xx = np.mgrid[0:height, 0:width]
    u, v = yy / max(height - 1, 1), xx / max(width - 1, 1)
    logits = np.stack(
        [
            3 * np.cos(np.pi * (rng.uniform(0.5, 3) * u + rng.uniform(0, 2)))
            * np.cos(np.pi * (rng.uniform(0.5, 3) * v + rng.uniform(0, 2)))
            + rng.uniform(-1, 1) * (u - v)
            for _ in range(materials)
        ],
        axis=-1,
    )
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.clip(weights.astype(np.float32) @ spectra.astype(np.float32), 0.15, 0.95)


def _header(samples: int, lines: int, wl: np.ndarray, tint_ms: float, data_type: int = 12, extra: str = "") -> str:
    """An ENVI header in the Specim IQ's own field order and spelling."""
    bands = wl.size
    wavelengths = ",\n".join(", ".join(f"{w:.2f}" for w in wl[i : i + 8]) for i in range(0, bands, 8))
    rgb = [int(np.abs(wl - t).argmin()) + 1 for t in (650.0, 550.0, 450.0)]
    return (
        "ENVI\n"
        "description = {\nhstool synthetic Specim IQ capture}\n"
        "file type = ENVI\n"
        "sensor type = SPECIM IQ\n"
        "acquisition date = DATE(dd-mm-yyyy): 25-11-2026\n"
        "Start Time = UTC TIME: 09:30:00\n"
        "Stop Time = UTC TIME: 09:30:41\n"
        f"samples = {samples}\n"
        f"bands = {bands}\n"
        f"lines = {lines}\n"
        "errors = {none}\n"
        "interleave = bil\n"
        f"data type = {data_type}\n"
        "header offset = 0\n"
        "byte order = 0\n"
        "x start = 0\n"
        "y start = 0\n"
        f"default bands = {{{rgb[0]}, {rgb[1]}, {rgb[2]}}}\n"
        f"himg = {{1, {samples}}}\n"
        f"vimg = {{1, {bands}}}\n"
        f"hroi = {{1, {samples}}}\n"
        f"vroi = {{1, {bands}}}\n"
        f"fps = {1000.0 / tint_ms:.4f}\n"
        f"tint = {tint_ms:g}\n"
        "binning = {1, 1}\n"
        "trigger mode = Internal\n"
        "wavelength units = Nanometers\n"
        f"{extra}"
        f"wavelength = {{\n{wavelengths}}}\n"
    )


def _write_part(path_stem: Path, sensor: np.ndarray, wl: np.ndarray, tint_ms: float) -> None:
    """Write a (lines, samples, bands) array as ``.hdr`` + ``.raw`` (uint16, BIL, little-endian)."""
    lines, samples, _ = sensor.shape
    path_stem.with_name(path_stem.name + ".hdr").write_text(_header(samples, lines, wl, tint_ms))
    with open(path_stem.with_name(path_stem.name + ".raw"), "wb") as fh:
        for start in range(0, lines, 64):
            block = sensor[start : start + 64].transpose(0, 2, 1)  # BIL: per line, bands x samples
            np.ascontiguousarray(block, dtype="<u2").tofile(fh)


def write_synthetic_capture(
    folder: str | Path,
    name: str = "synthetic",
    reflectance: Cube | int = 0,
    *,
    samples: int = 512,
    lines: int = 512,
    bands: int = 204,
    bad_columns: tuple[int, ...] | None = None,
    ref_lines: int = 100,
    ref_noise_dn: float = 1.5,
    scene_noise_dn: float = 0.0,
    tint_ms: float = 40.0,
    preset_white: bool = False,
    white_tint_ms: float | None = None,
    gain: bool = False,
    seed: int = 0,
    overwrite: bool = False,
) -> SyntheticCapture:
    """Write ``folder/name/`` as a Specim IQ capture and return the ground truth.

    ``reflectance`` is an upright Cube (its wavelengths resampled to the IQ grid, holding the
    edge values outside its range; sizes taken from it) or a seed for
    :func:`synthetic_reflectance`. ``bad_columns`` are detector columns (default: three spread
    over the width). ``preset_white`` writes ``WHITEDARKREF_`` and a white reference taken at
    ``white_tint_ms`` (default half the scene's). ``gain`` writes ``name/Radiometric_1x1.hdr/.cal``
    (float32, one line): radiance per (DN per ms), see :func:`hstool.camera.calibration.calibrate`.
    """
    rng = np.random.default_rng(seed)
    root = Path(folder) / name
    if root.exists() and not overwrite:
        raise HsError("output exists (use overwrite=True to replace it)", root)
    if isinstance(reflectance, Cube):
        samples, lines = reflectance.height, reflectance.width  # upright rows = samples
        wl = iq_wavelengths(bands)
        truth = resample_bands(
            np.asarray(reflectance.data, dtype=np.float32), reflectance.wavelengths, wl, extrapolate=True
        ).astype(np.float32)
    else:
        wl = iq_wavelengths(bands)
        truth = synthetic_reflectance(samples, lines, wl, seed=int(reflectance))
    if bad_columns is None:
        bad_columns = (samples // 5, samples // 2 + 3, samples - samples // 7)
    bad = sorted({int(c) for c in bad_columns})
    if any(c < 0 or c >= samples for c in bad):
        raise HsError(f"bad columns must lie in 0..{samples - 1}")

    # Sensor model (DN): smooth spectral response, vignetting along the slit, fixed pattern.
    x = (wl - wl[0]) / (wl[-1] - wl[0])
    spectral = 25.0 + 60.0 * np.exp(-0.5 * ((x - 0.45) / 0.3) ** 2)  # DN per ms at the panel
    col = np.linspace(-1, 1, samples)
    vignette = 1 - 0.25 * col**2
    rate = spectral[None, :] * vignette[:, None] * (1 + 0.01 * rng.standard_normal((samples, 1)))
    rate *= 1 + 0.003 * rng.standard_normal((samples, bands))
    offset = 90 + 4 * rng.standard_normal((samples, 1)) + 1.5 * rng.standard_normal((samples, bands))
    dark_current = 0.2 + 0.02 * rng.standard_normal((samples, bands))
    scale = (IQ_MAX_DN - 300) / (rate.max() * tint_ms)  # keep the brightest white below saturation
    rate *= min(1.0, scale)

    def dark_at(t: float) -> np.ndarray:
        return offset + dark_current * t

    def slab(mean: np.ndarray, noise: float, n: int) -> np.ndarray:
        data = mean[None] + noise * rng.standard_normal((n, samples, bands))
        if bad:
            data[:, bad] += 25 * rng.standard_normal((n, len(bad), bands))
        return np.clip(np.rint(data), 0, IQ_MAX_DN).astype(np.uint16)

    capdir = root / "capture"
    capdir.mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(exist_ok=True)
    dark_s, resp_s = dark_at(tint_ms), rate * tint_ms
    # Scene, written line by line in sensor orientation: sensor = rot90(upright, 1).
    sensor_truth = sensor_orientation(truth)  # (lines, samples, bands) view
    interference = np.ones((samples, bands))
    interference[bad] = 0.4  # the bad columns' weak response
    with open(capdir / f"{name}.raw", "wb") as fh:
        for start in range(0, lines, 32):
            r = np.asarray(sensor_truth[start : start + 32], dtype=np.float64)
            dn = dark_s + r * resp_s * interference
            if scene_noise_dn:
                dn += scene_noise_dn * rng.standard_normal(dn.shape)
            if bad:
                dn[:, bad] += 40 * rng.standard_normal((dn.shape[0], len(bad), bands))
            dn = np.clip(np.rint(dn), 0, IQ_MAX_DN).astype("<u2")
            np.ascontiguousarray(dn.transpose(0, 2, 1)).tofile(fh)
    (capdir / f"{name}.hdr").write_text(_header(samples, lines, wl, tint_ms))
    _write_part(capdir / f"DARKREF_{name}", slab(dark_s, ref_noise_dn, ref_lines), wl, tint_ms)
    t_white = tint_ms
    if preset_white:
        t_white = white_tint_ms if white_tint_ms is not None else tint_ms / 2
        dark_w = dark_at(t_white)
        _write_part(capdir / f"WHITEDARKREF_{name}", slab(dark_w, ref_noise_dn, ref_lines), wl, t_white)
    else:
        dark_w = dark_s
    white_mean = dark_w + rate * t_white * interference
    _write_part(capdir / f"WHITEREF_{name}", slab(white_mean, 2 * ref_noise_dn, ref_lines), wl, t_white)

    (root / "metadata" / f"{name}.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<properties>\n'
        '  <key field="datetime">2026-11-25 09:30:00</key>\n'
        f'  <key field="integration_time">{tint_ms:g}</key>\n'
        '  <key field="datacube_angle">0</key>\n'
        '  <key field="camera">SPECIM IQ (hstool synthetic)</key>\n'
        "</properties>\n"
    )
    files = [("raw", name)] + [(k, f"{p}{name}") for k, p in (("darkref", "DARKREF_"), ("whiteref", "WHITEREF_"))]
    if preset_white:
        files.append(("whitedarkref", f"WHITEDARKREF_{name}"))
    entries = "".join(
        f'  <file type="{t}" extension="{ext}">capture/{stem}.{ext}</file>\n' for t, stem in files for ext in ("hdr", "raw")
    )
    (root / "manifest.xml").write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<manifest>\n{entries}</manifest>\n')

    gain_arr = gain_path = None
    if gain:
        # Radiance of the panel: a smooth made-up spectrum in W m^-2 sr^-1 nm^-1; gain maps DN/ms to it.
        panel_radiance = 0.05 + 0.1 * np.exp(-0.5 * ((x - 0.4) / 0.35) ** 2)
        gain_arr = (panel_radiance[None, :] / rate).astype(np.float32)  # (samples, bands)
        gain_path = root / "Radiometric_1x1.cal"
        gain_path.with_suffix(".hdr").write_text(_header(samples, 1, wl, tint_ms, data_type=4))
        np.ascontiguousarray(gain_arr.T[None], dtype="<f4").tofile(gain_path)  # BIL: 1 line x bands x samples
    cube = Cube(truth, wl, {"units": "reflectance", "source": str(root), "orientation": "upright"})
    return SyntheticCapture(root, cube, bad, dark_s, resp_s, tint_ms, gain_arr, gain_path)
