"""sRGB previews of hyperspectral cubes (CIE 1931 2° observer, D65, sRGB transfer).

A reflectance cube is lit by CIE D65 and scaled so that a perfect white has Y = 1; any other
cube (radiance, ARAD's normalised radiance, DN) is taken as the light reaching the eye, with
a flat unit spectrum at Y = 1. ``exposure=None`` picks an automatic exposure that puts the 99th
percentile of Y at 0.9; a number multiplies Y instead (1.0 = no change).

References: CIE 015:2018 Colorimetry (CMFs, D65); IEC 61966-2-1:1999 (sRGB primaries and
transfer function). Tables from colour-science (``colour.MSDS_CMFS``, ``colour.SDS_ILLUMINANTS``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .cube import Cube
from .errors import HsError, check_positive
from .formats.image import unit_float, write_rgb
from .spectral import resample_bands

#: XYZ -> linear sRGB (IEC 61966-2-1).
XYZ_TO_SRGB = np.array(
    [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]
)


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import colour  # deferred: colour-science takes a second to import

    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    d65 = colour.SDS_ILLUMINANTS["D65"]
    wl = cmfs.wavelengths.astype(np.float64)
    return wl, cmfs.values.astype(np.float64), np.interp(wl, d65.wavelengths, d65.values)


def xyz_weights(wavelengths: np.ndarray, reflectance: bool) -> np.ndarray:
    """Matrix (B, 3) taking spectra on ``wavelengths`` to CIE XYZ, normalised as described above."""
    wl_cmf, cmf, d65 = _tables()
    wavelengths = np.asarray(wavelengths, dtype=np.float64)
    inside = (wavelengths >= wl_cmf[0]) & (wavelengths <= wl_cmf[-1])
    w = np.zeros((wavelengths.size, 3))
    if inside.sum() < 2:
        raise ValueError("cube has fewer than two bands in the visible range (360-830 nm)")
    wl_in = wavelengths[inside]
    cmf_b = resample_bands(cmf.T, wl_cmf, wl_in).T  # (B_in, 3)
    light = resample_bands(d65, wl_cmf, wl_in) if reflectance else np.ones(wl_in.size)
    edges = np.concatenate([[wl_in[0]], (wl_in[1:] + wl_in[:-1]) / 2, [wl_in[-1]]])
    width = np.diff(edges)
    w_in = cmf_b * (light * width)[:, None]
    w[inside] = w_in / w_in[:, 1].sum()
    return w


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) on values clipped to [0, 1]."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """The inverse of :func:`srgb_encode` (IEC 61966-2-1): linear values of sRGB-encoded ones in
    [0, 1] (clipped), or of uint8/uint16 codes (scaled by 255/65535); float32 stays float32."""
    x = np.asarray(encoded)
    x = np.clip(unit_float(x) if x.dtype.kind in "ui" else x, 0.0, 1.0)  # codes scaled by their type
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(x.dtype, copy=False)


def cube_to_srgb(cube: Cube, exposure: float | None = None) -> np.ndarray:
    """Float sRGB (H, W, 3) in [0, 1] of a cube; see the module docstring for the conventions."""
    check_positive(exposure, "exposure")
    reflectance = cube.meta.get("units") == "reflectance"
    # float32 unless the cube's values need float64's range (a float64 cube beyond 3.4e38)
    work = np.float64 if np.asarray(cube.data).dtype == np.float64 else np.float32
    try:
        weights = xyz_weights(cube.wavelengths, reflectance).astype(work)
    except ValueError as exc:
        raise HsError(str(exc), cube.meta.get("source")) from None
    data = np.nan_to_num(np.asarray(cube.data, dtype=work), nan=0.0, posinf=0.0, neginf=0.0)
    xyz = data @ weights
    if exposure is None:
        p99 = float(np.percentile(xyz[..., 1], 99)) if xyz[..., 1].size else 0.0
        exposure = 0.9 / p99 if p99 > 0 else 1.0
    rgb_lin = (xyz * work(exposure)) @ XYZ_TO_SRGB.T.astype(work)
    return srgb_encode(rgb_lin).astype(np.float32)


def preview_image(cube: Cube, exposure: float | None = None) -> np.ndarray:
    """The 8-bit sRGB preview of ``cube`` (H, W, 3) uint8. A batch makes it before it writes the
    cube, so that a cube with no preview (no visible bands) fails whole, not after its cube."""
    return np.round(cube_to_srgb(cube, exposure) * 255).astype(np.uint8)


def preview_path(cube: str | Path) -> Path:
    """Where the preview of the cube file ``cube`` goes, for every command: ``NAME_preview.png`` beside
    it (``NAME.png`` might be the RGB image the cube came from)."""
    cube = Path(cube)
    return cube.with_name(cube.stem + "_preview.png")


def write_preview(cube: Cube | np.ndarray, path: str | Path, overwrite: bool = False,
                  exposure: float | None = None) -> Path:
    """Write an 8-bit sRGB PNG preview of ``cube`` (or an image from :func:`preview_image`) atomically."""
    rgb = cube if isinstance(cube, np.ndarray) else preview_image(cube, exposure)
    return write_rgb(path, rgb, overwrite=overwrite, preview=True)
