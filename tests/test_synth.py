"""Synthetic scenes: determinism, physical bounds, the train/test split, the bundled sample."""

from __future__ import annotations

import numpy as np
import pytest

from hstool.hsdata import ARAD_WAVELENGTHS, HsError, read_cube
from hstool.hsdata.materials import illuminant_library, material_library
from hstool.hsdata.spectral import resample_bands
from hstool.hsdata.synth import FLOOR, generate_scene

SIZE = (40, 48)


def test_same_seed_same_scene_other_seed_other_scene():
    a = generate_scene(7, SIZE)
    b = generate_scene(7, SIZE)
    c = generate_scene(8, SIZE)
    d = generate_scene(7, SIZE, split="test")
    assert a.shape == (40, 48, 31) and a.data.dtype == np.float32
    np.testing.assert_array_equal(a.data, b.data)
    assert a.meta == b.meta
    assert np.abs(a.data - c.data).mean() > 1e-3
    assert np.abs(a.data - d.data).mean() > 1e-3


def test_reflectance_bounded_and_cube_is_normalised_radiance():
    cube, parts = generate_scene(3, SIZE, return_parts=True)
    r = parts["reflectance"]
    assert r.shape == cube.shape
    assert r.min() >= 0.0 and r.max() <= 1.0
    assert parts["light"].min() > 0  # direct + fill light reach every pixel
    assert cube.data.min() >= FLOOR and cube.data.max() <= 1.0
    nf = cube.meta["norm_factor"]
    assert nf > 0 and cube.meta["units"] == "radiance"
    # the cube is the radiance divided by norm_factor, except where clipped (highlights, floor)
    inside = (cube.data > FLOOR) & (cube.data < 1.0)
    assert inside.mean() > 0.95
    np.testing.assert_allclose(cube.data[inside] * nf, parts["radiance"][inside], rtol=1e-5)
    # every region's materials come from the library, the scene has several regions and edges
    assert len(np.unique(parts["labels"])) >= 5
    assert np.abs(np.diff(cube.data, axis=1)).max() > 0.05


def test_band_grid_follows_request():
    wl = np.arange(420.0, 681.0, 20.0)
    cube = generate_scene(1, (16, 16), wavelengths=wl)
    assert cube.bands == wl.size
    np.testing.assert_array_equal(cube.wavelengths, wl)


def test_test_split_materials_and_illuminants_never_in_train():
    for lib in (material_library, illuminant_library):
        train, test = lib(ARAD_WAVELENGTHS, "train"), lib(ARAD_WAVELENGTHS, "test")
        assert len(test) > 0.1 * (len(train) + len(test))
        assert not set(train.names) & set(test.names)
        assert not set(train.groups) & set(test.groups)
    # a scene of the test split uses only test materials and lights
    _, parts = generate_scene(5, SIZE, split="test", return_parts=True)
    test_names = set(material_library(ARAD_WAVELENGTHS, "test").names)
    assert set(parts["materials"]) <= test_names
    assert set(parts["illuminants"]) <= set(illuminant_library(ARAD_WAVELENGTHS, "test").names)
    # a ColorChecker patch measured by BabelColor, Ohta and ISO lands on one side for all three
    import colour

    for patch in colour.SDS_COLOURCHECKERS["BabelColor Average"]:
        sides = {f"chart:{chart}:{patch}" in test_names
                 for chart in ("BabelColor Average", "ColorChecker N Ohta", "ISO 17321-1")}  # fmt: skip
        assert len(sides) == 1, patch


def test_library_holds_the_cited_sources_resampled_faithfully():
    import colour

    lib = material_library()
    names = lib.names
    assert sum(n.startswith("earthlib:") for n in names) == 7261
    assert sum(n.startswith("chart:") for n in names) == 24 * 3 + 30
    assert sum(n.startswith("tcs:") for n in names) == 14 + 15
    assert sum(n.startswith("cqs:") for n in names) == 30
    assert sum(n.startswith("otsu2018:") for n in names) == 72
    # a 10 nm chart on the 10 nm ARAD grid is copied exactly
    sd = colour.SDS_COLOURCHECKERS["BabelColor Average"]["red"]
    row = lib.values[names.index("chart:BabelColor Average:red")]
    np.testing.assert_allclose(row, [sd[w] for w in ARAD_WAVELENGTHS], atol=1e-6)
    # the D series at 6500 K (CIE's 1.4388/1.4380 correction) is the tabulated D65, band-averaged
    # over 10 nm triangles like every finer-than-grid source, up to normalisation to unit mean
    lights = illuminant_library()
    d = lights.values[lights.names.index("CIE D series 6500 K")]
    d65 = colour.SDS_ILLUMINANTS["D65"]
    ref = resample_bands(d65.values, d65.wavelengths, ARAD_WAVELENGTHS, "triangular")
    np.testing.assert_allclose(d, ref / ref.mean(), rtol=0.005)


@pytest.mark.parametrize(
    "kwargs", [{"split": "val"}, {"size": (4, 4)}, {"wavelengths": np.arange(300.0, 1001.0, 10.0)}, {"seed": -1}]
)
def test_bad_requests_raise(kwargs):
    args = {"seed": 0, "size": (16, 16), **kwargs}
    with pytest.raises(HsError):
        generate_scene(**args)


def test_bundled_sample_matches_its_generating_command():
    from hstool.hsdata import sample

    cubes = sample.sample_cubes()
    assert [p.name for p in cubes] == [f"SYNTH_{sample.SPLIT}_{s:04d}.mat" for s in sample.SEEDS]
    assert sum(p.stat().st_size for p in sample.sample_dir().iterdir()) < 3.5e6
    for path, seed in zip(cubes, sample.SEEDS):
        stored = read_cube(path)
        fresh = generate_scene(seed, sample.SIZE, split=sample.SPLIT)
        assert stored.meta["norm_factor"] == pytest.approx(fresh.meta["norm_factor"], rel=1e-9)
        np.testing.assert_allclose(stored.data, fresh.data, atol=sample.QUANTUM * 1.01,
                                   err_msg="generator changed: run python -m hstool.hsdata.sample")  # fmt: skip


def test_fine_band_grids_blur_in_parts_like_band_by_band():
    """OpenCV filters at most 128 channels at once: a 1 nm grid (401 bands) is blurred in parts."""
    import cv2

    from hstool.hsdata.synth import _blur

    cube = np.random.default_rng(0).random((12, 15, 301), dtype=np.float32)
    want = np.stack([cv2.GaussianBlur(cube[..., b], (0, 0), 0.7) for b in range(cube.shape[2])], axis=2)
    np.testing.assert_allclose(_blur(cube, 0.7), want, rtol=1e-6, atol=1e-7)  # SIMD paths round apart
    assert generate_scene(1, (16, 20), np.arange(380.0, 781.0, 1.0)).shape == (16, 20, 401)
