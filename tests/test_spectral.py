"""Band resampling against closed-form answers."""

from __future__ import annotations

import numpy as np
import pytest

from hstool.hsdata import ARAD_WAVELENGTHS, HsError
from hstool.hsdata.spectral import parse_band_grid, resample_bands, resampling_matrix

SPECIM = np.linspace(397.32, 1003.58, 204)  # a Specim IQ-like irregular 204-band grid


def test_parse_band_grid_examples():
    np.testing.assert_array_equal(parse_band_grid("400:700:10"), ARAD_WAVELENGTHS)
    np.testing.assert_array_equal(parse_band_grid(" 450, 550,650 "), [450, 550, 650])
    np.testing.assert_allclose(parse_band_grid("400:401:0.1"), 400 + 0.1 * np.arange(11))


@pytest.mark.parametrize("dst", [ARAD_WAVELENGTHS, np.array([400.0, 401.7, 655.55, 1000.0]), SPECIM[5:-5]])
def test_linear_matrix_weights_sum_to_one_and_are_local(dst):
    m = resampling_matrix(SPECIM, dst, "linear")
    assert m.shape == (SPECIM.size, dst.size)
    np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-12)  # each output band: weights sum to 1
    assert np.all(m >= 0) and np.all((m > 0).sum(axis=0) <= 2)  # two neighbours at most


def test_linear_resampling_is_exact_on_a_linear_spectrum():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 1))
    spectra = a + b * SPECIM / 1000  # 5 linear spectra
    out = resample_bands(spectra, SPECIM, ARAD_WAVELENGTHS)
    np.testing.assert_allclose(out, a + b * ARAD_WAVELENGTHS / 1000, atol=1e-12)
    # a source band hit exactly returns its value
    np.testing.assert_allclose(resample_bands(spectra, SPECIM, SPECIM[[0, 77, -1]]), spectra[:, [0, 77, -1]])


@pytest.mark.parametrize("method", ["gaussian", "triangular"])
def test_integrating_methods_keep_a_constant(method):
    for fwhm in (None, 5.0, 30.0):
        m = resampling_matrix(SPECIM, ARAD_WAVELENGTHS, method, fwhm=fwhm)
        np.testing.assert_allclose(np.full(SPECIM.size, 0.37) @ m, 0.37, rtol=1e-12)
    # a symmetric response centred on a linear ramp's sample gives the ramp's value there
    src = np.arange(300.0, 801.0, 1.0)
    out = resample_bands(2.0 + 0.01 * src, src, ARAD_WAVELENGTHS, method, fwhm=10.0)
    np.testing.assert_allclose(out, 2.0 + 0.01 * ARAD_WAVELENGTHS, rtol=1e-9)


def test_gaussian_fwhm_is_honoured():
    """A Gaussian response of FWHM f applied to a spectrum that is itself a narrow line at the band
    centre: the weights fall to half their peak f/2 away from it."""
    src = np.arange(500.0, 601.0, 0.5)
    m = resampling_matrix(src, np.array([550.0]), "gaussian", fwhm=20.0)[:, 0]
    peak = m[src == 550.0][0]
    np.testing.assert_allclose(m[src == 560.0][0] / peak, 0.5, rtol=1e-9)
    np.testing.assert_allclose(m[src == 540.0][0] / peak, 0.5, rtol=1e-9)


def test_extrapolation_refused_unless_asked():
    dst = np.array([380.0, 500.0, 720.0])
    for method in ("linear", "gaussian", "triangular"):
        with pytest.raises(HsError, match="outside the source range"):
            resampling_matrix(ARAD_WAVELENGTHS, dst, method)
    spectrum = 1.0 + ARAD_WAVELENGTHS / 100
    out = resample_bands(spectrum, ARAD_WAVELENGTHS, dst, extrapolate=True)
    np.testing.assert_allclose(out, [5.0, 6.0, 8.0])  # edges held for linear
    out = resample_bands(np.ones(31), ARAD_WAVELENGTHS, dst, "gaussian", fwhm=20, extrapolate=True)
    np.testing.assert_allclose(out, 1.0)  # truncated response renormalised


def test_dtypes_and_bad_arguments(tmp_cube):
    cube = tmp_cube(4, 5)
    out = resample_bands(cube.data, cube.wavelengths, np.arange(405.0, 700.0, 5.0))
    assert out.dtype == np.float32 and out.shape == (4, 5, 59)
    assert resample_bands(cube.data.astype(np.float64), cube.wavelengths, [500.0]).dtype == np.float64
    with pytest.raises(HsError, match="method"):
        resampling_matrix(ARAD_WAVELENGTHS, ARAD_WAVELENGTHS, "cubic")
    with pytest.raises(HsError, match="two source bands"):
        resampling_matrix(np.array([500.0]), np.array([500.0]))


def test_a_dead_band_spoils_only_the_targets_that_weigh_it():
    data = np.linspace(0.1, 0.9, 31)[None, None, :].repeat(2, axis=0).astype(np.float32)
    data[0, 0, 0] = np.nan  # a dead 400 nm value
    data[1, 0, 5] = np.inf  # a saturated 450 nm one
    dst = np.arange(400.0, 451.0, 5.0)
    out = resample_bands(data, ARAD_WAVELENGTHS, dst)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out[0, 0]), dst <= 405)  # 400 and 405 weigh the 400 nm band
    np.testing.assert_array_equal(np.isnan(out[1, 0]), (dst >= 445) & (dst <= 450))
    clean = np.interp(dst, ARAD_WAVELENGTHS, np.linspace(0.1, 0.9, 31))
    np.testing.assert_allclose(out[0, 0, 2:], clean[2:], rtol=1e-6)
    assert np.isnan(resample_bands(data, ARAD_WAVELENGTHS, [500.0], "gaussian", fwhm=400.0)).all()  # weighs both
    # a gaussian's far tail, below float32's resolution, weighs nothing: a 400 nm NaN on a 3 nm grid
    # spoils the targets its response reaches, not half the spectrum
    src = np.arange(400.0, 1000.5, 3.0)
    fine = np.ones((1, 1, src.size), np.float32)
    fine[..., 0] = np.nan
    spoiled = np.isnan(resample_bands(fine, src, ARAD_WAVELENGTHS, "gaussian"))[0, 0]
    assert spoiled[:2].all() and not spoiled[4:].any(), np.flatnonzero(spoiled)
