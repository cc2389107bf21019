"""sRGB previews checked against colour-science's own colorimetry."""

from __future__ import annotations

import colour
import numpy as np
import pytest

from hstool.hsdata import ARAD_WAVELENGTHS, Cube, read_rgb
from hstool.hsdata.render import cube_to_srgb, srgb_encode, write_preview

CHECKER = colour.SDS_COLOURCHECKERS["BabelColor Average"]


def expected_srgb(sd) -> np.ndarray:
    """Independent route: CIE 1931 2° integration under D65 (ASTM E308 tables), then sRGB."""
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    with colour.utilities.suppress_warnings(colour_runtime_warnings=True):  # "trimming" notices
        xyz = colour.sd_to_XYZ(sd, cmfs, colour.SDS_ILLUMINANTS["D65"]) / 100  # perfect white: Y = 1
    return np.clip(colour.XYZ_to_sRGB(xyz), 0, 1)


@pytest.mark.parametrize("grid", ["babelcolor", "arad"])
def test_colorchecker_renders_to_its_srgb(grid):
    names = list(CHECKER)
    wl = CHECKER[names[0]].wavelengths.astype(np.float64)  # 380-780 nm, 10 nm
    if grid == "arad":
        wl = ARAD_WAVELENGTHS  # what an ARAD cube holds: 400-700 nm
    spectra = np.stack([CHECKER[n].copy().align(colour.SpectralShape(wl[0], wl[-1], 10)).values for n in names])
    cube = Cube(spectra.reshape(4, 6, -1).astype(np.float32), wl, {"units": "reflectance"})
    rgb = cube_to_srgb(cube, exposure=1.0).reshape(24, 3)
    expected = np.array([expected_srgb(CHECKER[n]) for n in names])
    # within 0.01 even on ARAD's grid, which misses 380-400 and 700-780 nm (measured: 5e-4 / 2e-3)
    np.testing.assert_allclose(rgb, expected, atol=0.01, err_msg=grid)
    # spot checks a person would recognise: dark skin is reddish, the blue patch is blue
    assert rgb[0, 0] > rgb[0, 2] and rgb[12, 2] > rgb[12, 0]


def test_grey_and_white_and_radiance():
    wl = ARAD_WAVELENGTHS
    flat = np.ones((2, 3, wl.size), np.float32) * np.array([1.0, 0.18, 0.0])[None, :, None]
    white = cube_to_srgb(Cube(flat, wl, {"units": "reflectance"}), exposure=1.0)
    # D65 on a perfect white is sRGB white, up to the 31-band sampling of the CIE tables
    np.testing.assert_allclose(white[0, 0], 1.0, atol=3e-3)
    np.testing.assert_allclose(white[0, 1], srgb_encode(0.18), atol=3e-3)  # neutral grey stays neutral
    np.testing.assert_allclose(white[0, 2], 0.0, atol=1e-6)
    # a radiance cube: a flat unit spectrum has Y = 1 (equal-energy white is slightly pinkish)
    ee = cube_to_srgb(Cube(np.ones((1, 1, wl.size), np.float32), wl, {"units": "radiance"}), exposure=1.0)
    flat_sd = colour.SpectralDistribution(dict.fromkeys(wl, 1.0))
    with colour.utilities.suppress_warnings(colour_runtime_warnings=True):
        xyz_e = colour.sd_to_XYZ(flat_sd, illuminant=colour.SDS_ILLUMINANTS["E"])
    expected = np.clip(colour.XYZ_to_sRGB(xyz_e / xyz_e[1]), 0, 1)
    np.testing.assert_allclose(ee[0, 0], expected, atol=0.01)


def test_auto_exposure_and_preview_file(tmp_path, tmp_cube):
    cube = tmp_cube(units="radiance")
    auto = cube_to_srgb(cube)
    assert auto.shape == (24, 32, 3) and auto.dtype == np.float32
    assert 0 <= auto.min() and auto.max() <= 1
    doubled = cube_to_srgb(cube.with_data(cube.data * 7))  # auto exposure cancels a gain
    np.testing.assert_allclose(doubled, auto, atol=1e-5)
    nan = cube.data.copy()
    nan[0, 0, 3] = np.nan
    assert np.isfinite(cube_to_srgb(cube.with_data(nan))).all()
    path = write_preview(cube, tmp_path / "p.png")
    np.testing.assert_allclose(read_rgb(path), auto, atol=0.5 / 255 + 1e-6)
