"""camera: parity with straight implementations of the NTIRE 2020 formulas, noise statistics,
the CSS library and user files, transforms."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_cube

from hstool.camera import (
    CSS,
    TRACKS,
    capture,
    capture_raw,
    list_css,
    load_css,
    read_css,
    scale_brightness,
    shuffle_patches,
    simulate,
    simulate_to_file,
    stages,
    track,
)
from hstool.camera.sensitivity import DATA_DIR
from hstool.hsdata import ARAD_WAVELENGTHS, Cube, HsError, read_rgb, write_cube

# sha256 sums from ../shared/data/PROVENANCE.md (organisers' repository, commit 7c7712a)
SHA256 = {
    "cie_1964_w_gain.npz": "ccd04e1228b8129cd028eb863b352d34ab4d415cc9e762931a32b03cd00c638d",
    "example_D40_camera_w_gain.npz": "3e6396b050d390a2dcac5dc112bba98c1cf49ffcb4a5a4ce9464fa344683e106",
    "ciexyz64.csv": "98054e9a1ef2246161852e4dcb7f1ca359a85ec34ac3ebd5c559e6df2dea278f",
}


def organiser_filters(name: str) -> np.ndarray:
    with np.load(DATA_DIR / name) as z:
        return z["filters"]


def bright_cube(seed: int = 0, height: int = 16, width: int = 20) -> Cube:
    """A cube reaching above 1 in places, so that clipping is exercised."""
    c = make_cube(height, width, seed=seed)
    return c.with_data((c.data * 2.2).astype(np.float32))


# --- data files -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHA256))
def test_shipped_files_match_provenance(name):
    assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() == SHA256[name]


def test_css_column_sums_and_derivation():
    clean, d40 = load_css("cie1964"), load_css("d40")
    np.testing.assert_allclose(clean.values.sum(axis=0), [255, 255, 255], rtol=1e-14)
    np.testing.assert_allclose(d40.values.sum(axis=0), [65535, 65535, 65535], rtol=1e-14)
    np.testing.assert_array_equal(clean.wavelengths, ARAD_WAVELENGTHS)
    # cie_1964_w_gain is the CIE 1964 table (ciexyz64.csv) at 400:10:700, columns scaled to 255
    table = np.loadtxt(DATA_DIR / "ciexyz64.csv", delimiter=",")
    rows = table[np.isin(table[:, 0], ARAD_WAVELENGTHS), 1:]
    np.testing.assert_allclose(clean.values, rows / rows.sum(axis=0) * 255, rtol=0, atol=1e-12)


def test_library_names_and_ranges():
    names = [c.name for c in list_css()]
    assert names == ["cie1964", "d40", "cie1931", "nikon5100", "sigma_sd_merrill"]
    for c in list_css():
        rgb = c.on(ARAD_WAVELENGTHS)  # every library CSS works on the ARAD grid
        assert rgb.shape == (31, 3) and np.all(rgb >= 0)
        # a flat unit spectrum gives about the shipped white level in every channel
        np.testing.assert_allclose(rgb.sum(axis=0), c.values.sum(axis=0), rtol=0.01)


def test_css_on_other_grid_keeps_the_response():
    cube = make_cube(8, 10)
    fine = np.arange(400.0, 700.1, 5.0)
    fine_data = np.stack([np.interp(fine, ARAD_WAVELENGTHS, s) for s in cube.data.reshape(-1, 31)])
    fine_cube = Cube(fine_data.reshape(8, 10, -1).astype(np.float32), fine)
    coarse = simulate(cube, track("clean", bits=16))
    other = simulate(fine_cube, track("clean", bits=16))
    np.testing.assert_allclose(other, coarse, rtol=0.02, atol=1e-3)


def test_user_css_csv_round_trip(tmp_path):
    from hstool.camera import write_css_csv

    d40 = load_css("d40")
    back = read_css(write_css_csv(d40, tmp_path / "cam.csv"))
    np.testing.assert_array_equal(back.values, d40.values)
    np.testing.assert_array_equal(back.wavelengths, d40.wavelengths)
    # no header, semicolons
    rows = "\n".join(f"{w:g};{r!r};{g!r};{b!r}" for w, (r, g, b) in zip(d40.wavelengths, d40.values))
    (tmp_path / "raw.csv").write_text(rows + "\n")
    np.testing.assert_array_equal(load_css(tmp_path / "raw.csv").values, d40.values)
    # the same camera from a user file simulates the same image
    cube = make_cube(8, 10)
    a = simulate(cube, track("realworld", css=tmp_path / "cam.csv"), rng=3)
    b = simulate(cube, "realworld", rng=3)
    np.testing.assert_array_equal(a, b)


def test_user_css_csv_header_names_the_channels_in_any_order(tmp_path):
    """wavelength,B,G,R is read as R,G,B (it was taken in file order: red and blue swapped);
    names that are no channel's keep their order; a header naming a channel twice is refused."""
    d40 = load_css("d40")

    def write(name, header, columns):
        lines = [header] + [",".join(repr(float(v)) for v in (w, *row[columns]))
                            for w, row in zip(d40.wavelengths, d40.values)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return tmp_path / name

    for header, columns in (("wavelength,B,G,R", [2, 1, 0]), ("nm;Green;Red;Blue", [1, 0, 2]), ("nm,x,y,z", [0, 1, 2]),
                            ("wavelength,b_bar,g_bar,r_bar", [2, 1, 0]),
                            ("Wavelength (nm);Blue sensitivity;Green sensitivity;Red sensitivity", [2, 1, 0])):
        path = write("c.csv", header.replace(";", ","), columns)
        np.testing.assert_array_equal(read_css(path).values, d40.values, err_msg=header)
    with pytest.raises(HsError, match="expected wavelength and R, G, B in any order"):
        read_css(write("bad.csv", "nm,R,R,B", [0, 1, 2]))


def test_user_css_npz_and_bad_files(tmp_path):
    np.savez(tmp_path / "mine.npz", filters=organiser_filters("cie_1964_w_gain.npz"), bands=ARAD_WAVELENGTHS[None])
    np.testing.assert_array_equal(load_css(tmp_path / "mine.npz").values, load_css("cie1964").values)
    (tmp_path / "three.csv").write_text("wavelength,R,G\n400,1,2\n410,1,2\n")
    with pytest.raises(HsError, match="4: wavelength,R,G,B"):
        read_css(tmp_path / "three.csv")
    (tmp_path / "text.csv").write_text("400,a,b,c\n")
    with pytest.raises(HsError, match="not numeric"):
        read_css(tmp_path / "text.csv")
    np.savez(tmp_path / "keys.npz", x=np.ones(3))
    with pytest.raises(HsError, match="filters"):
        read_css(tmp_path / "keys.npz")
    with pytest.raises(HsError, match="unknown CSS"):
        load_css("no_such_camera")
    with pytest.raises(HsError, match="negative"):
        CSS("neg", [400, 410], [[1, 1, -1], [1, 1, 1]])
    with pytest.raises(HsError, match="channel.s. B are zero at every wavelength"):
        CSS("blind", [400, 410], [[1, 1, 0], [1, 1, 0]])


# --- clean track: bit-exact ------------------------------------------------------------------


def test_clean_png_equals_organisers_formula(tmp_path):
    cube = bright_cube()
    css = organiser_filters("cie_1964_w_gain.npz")
    rgb = cube.data @ css / 256  # Arad et al. 2020: clean RGB = cube @ CIE 1964 (sum 255) / 256
    expected = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)  # floor, as astype does
    assert (rgb > 1).any()  # clipping exercised
    path = simulate_to_file(cube, tmp_path / "a_clean.png", "clean")
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, expected)
    np.testing.assert_array_equal(simulate(cube, "clean"), read_rgb(path))
    with pytest.raises(HsError, match="exists"):
        simulate_to_file(cube, path, "clean")


def test_pipeline_matrix_and_names():
    clean, real, n22 = (track(t) for t in TRACKS)
    np.testing.assert_array_equal(clean.matrix(ARAD_WAVELENGTHS), organiser_filters("cie_1964_w_gain.npz") / 256)
    np.testing.assert_array_equal(real.matrix(), organiser_filters("example_D40_camera_w_gain.npz") / 65535)
    assert (clean.suffix, clean.extension) == ("_clean", ".png")
    assert (real.suffix, real.extension) == ("_RealWorld", ".jpg")
    assert n22.suffix == "_ntire2022" and n22.target_mean == 0.18
    # the matrix is the noise-free linear map: clean output = floor of cube @ matrix
    cube = make_cube(8, 10)
    lin = cube.data @ clean.matrix(cube.wavelengths)
    assert np.all(np.abs(simulate(cube, clean) - lin) <= 1 / 255 + 1e-6)


def test_gamma_and_16_bit(tmp_path):
    cube = bright_cube()
    rgb = np.clip(cube.data @ organiser_filters("cie_1964_w_gain.npz") / 256, 0, 1)
    got = capture(cube, track("clean", gamma=2.2))
    np.testing.assert_array_equal(got, (np.clip(rgb ** (1 / 2.2), 0, 1) * 255).astype(np.uint8))
    p16 = track("clean", bits=16)
    path = simulate_to_file(cube, tmp_path / "x.png", p16)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    np.testing.assert_array_equal(read_rgb(path), simulate(cube, p16))
    np.testing.assert_array_equal(capture(cube, p16), (rgb * 65535).astype(np.uint16))
    with pytest.raises(HsError, match="8-bit"):
        track("realworld", bits=16)


def test_linearise_inverts_the_response_curves():
    from hstool.camera import stages

    x = np.linspace(0, 1, 1001)
    for gamma in ("srgb", "SRGB", 2.2, "1.8", 1.0):
        np.testing.assert_allclose(stages.linearise(stages.response(x, gamma), gamma), x, atol=1e-12)
    # IEC 61966-2-1 closed forms: the linear segment and the power segment
    assert stages.linearise(np.array(0.04), "srgb") == pytest.approx(0.04 / 12.92)
    assert stages.linearise(np.array(0.5), "srgb") == pytest.approx(((0.5 + 0.055) / 1.055) ** 2.4)
    assert stages.linearise(np.array(0.5), 2.2) == pytest.approx(0.5**2.2)
    assert stages.linearise(np.float32([0.5]), "srgb").dtype == np.float32
    from hstool.hsdata.render import srgb_decode  # codes are scaled by their type first

    np.testing.assert_allclose(srgb_decode(np.array([0, 128, 255], np.uint8)), srgb_decode(np.array([0, 128, 255]) / 255),
                               rtol=1e-6)  # float32 codes
    np.testing.assert_allclose(srgb_decode(np.array([32896], np.uint16)), srgb_decode(np.array([128 / 255])), rtol=1e-6)
    for bad, message in (("abc", "gamma must be a number or 'srgb', got 'abc'"), (0, "gamma must be a positive"),
                         (True, "gamma must be a number or 'srgb', got True"), (None, "got 'None'"),
                         ("-2", "gamma must be a positive"), (float("nan"), "gamma must be a positive")):
        with pytest.raises(HsError, match=message):
            stages.linearise(x, bad)
        with pytest.raises(HsError, match=message):
            track("clean", gamma=bad)


# --- real-world track --------------------------------------------------------------------------


def test_realworld_noise_off_equals_organisers_formula(tmp_path):
    cube = bright_cube(seed=1)
    css = organiser_filters("example_D40_camera_w_gain.npz")
    full = cube.data @ css  # columns sum 65535, no /256
    bayer = np.empty(full.shape[:2])
    bayer[0::2, 0::2] = full[0::2, 0::2, 0]  # R
    bayer[0::2, 1::2] = full[0::2, 1::2, 1]  # G
    bayer[1::2, 0::2] = full[1::2, 0::2, 1]  # G
    bayer[1::2, 1::2] = full[1::2, 1::2, 2]  # B
    raw = np.clip(np.round(bayer), 0, 65535).astype(np.uint16)
    rgb = cv2.cvtColor(raw, cv2.COLOR_BayerBG2BGR_EA)[..., ::-1] / 65535
    expected = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    p = track("realworld", npe=None)
    np.testing.assert_array_equal(capture_raw(cube, p), raw)
    np.testing.assert_array_equal(capture(cube, p), expected)
    _, buf = cv2.imencode(".jpg", np.ascontiguousarray(expected[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    path = simulate_to_file(cube, tmp_path / "a_RealWorld.jpg", p)
    assert path.read_bytes() == buf.tobytes()
    np.testing.assert_array_equal(simulate(cube, p), read_rgb(path))


def test_band_major_cubes_round_like_numpy():
    # ARAD_1K files read through h5py are band-major views; the fast projection must still round
    # exactly as numpy's cube @ css, including values sitting on a tie (flat 0.5 x 65535 sums)
    d40 = organiser_filters("example_D40_camera_w_gain.npz")
    flat = Cube(np.full((31, 20, 16), 0.5, np.float32).transpose(2, 1, 0), ARAD_WAVELENGTHS)
    raw = capture_raw(flat, track("realworld", npe=None, pattern=None))
    np.testing.assert_array_equal(raw, np.clip(np.round(np.ascontiguousarray(flat.data) @ d40), 0, 65535))
    assert {32767, 32768} <= set(np.unique(raw))  # ties resolved both ways, as numpy's sums fall
    cube = bright_cube(seed=2)
    view = cube.with_data(np.ascontiguousarray(cube.data.transpose(2, 1, 0)).transpose(2, 1, 0))
    assert not view.data.flags.c_contiguous
    np.testing.assert_array_equal(capture(view, "clean"), capture(cube, "clean"))
    np.testing.assert_array_equal(capture(view, track("realworld", npe=None)), capture(cube, track("realworld", npe=None)))


@pytest.mark.parametrize("pattern", stages.PATTERNS)
@pytest.mark.parametrize("method", stages.DEMOSAIC_METHODS)
def test_demosaic_keeps_colours_for_every_pattern(pattern, method):
    colour = np.array([52000, 30000, 9000], dtype=np.float64)
    flat = np.broadcast_to(colour, (12, 14, 3)).copy()
    raw = stages.quantise_raw(stages.mosaic(flat, pattern), 65535)
    out = stages.demosaic(raw, pattern, method)
    assert out.dtype == np.uint16
    # interior pixels (VNG works at 8-bit precision: one 8-bit step = 257)
    np.testing.assert_allclose(out[3:-3, 3:-3].reshape(-1, 3), np.tile(colour, (48, 1)), atol=300)


@pytest.mark.parametrize("pattern", stages.PATTERNS)
def test_red_scene_gives_red_image(pattern):
    # a camera seeing red only: its R filter above 600 nm, G and B blind there; a red scene
    wl = ARAD_WAVELENGTHS
    css = CSS("redcam", wl, np.stack([(wl >= 600) * 1000.0, (wl < 550) * 1000.0, (wl < 480) * 1000.0], 1))
    data = np.zeros((10, 12, 31), np.float32)
    data[..., wl >= 620] = 0.9
    out = simulate(Cube(data, wl), track("realworld", css=css, pattern=pattern, npe=None, encoding="png"))
    assert out[..., 0].min() > 0.5 and out[..., 1:].max() == 0


def test_noise_draws_are_the_organisers_formula_bit_for_bit():
    """add_noise draws Poisson shot noise, then Gaussian noise as ``rng.normal(0, sigma)`` would
    (in place, as sigma * standard_normal): the same numbers as the straight formula, same seed."""
    signal = np.random.default_rng(3).uniform(0, 4000, (33, 47))
    gain, dark, read = 1.7, 10.0, 3.0
    sigma = float(np.hypot(dark, read))
    rng = np.random.default_rng(11)
    want = (rng.poisson(np.clip(signal * gain, 0, None)).astype(np.float64) + rng.normal(0.0, sigma, signal.shape)) / gain
    got = stages.add_noise(signal, np.random.default_rng(11), gain, True, dark, read)
    np.testing.assert_array_equal(got, want)
    want = (signal * gain + np.random.default_rng(12).normal(0.0, sigma, signal.shape)) / gain  # no shot noise
    np.testing.assert_array_equal(stages.add_noise(signal, np.random.default_rng(12), gain, False, dark, read), want)


def test_projection_in_blocks_is_the_whole_product():
    """project_fast's blocks (several here) give one product's values to a few ulp (BLAS sums a
    block's tail in another order; simulate settles the rounding ties that could matter), as
    numpy's ``cube @ css`` does."""
    planes = np.random.default_rng(4).random((31, 37, 29), dtype=np.float32)  # band-major, as ARAD .mat
    data = planes.transpose(2, 1, 0)  # (H, W, B) view
    css = organiser_filters("cie_1964_w_gain.npz")
    whole, exact = stages.project_fast(data, css)
    assert not exact and whole.shape == (29, 37, 3)
    for step in (1, 100, 1000):
        np.testing.assert_allclose(stages.project_fast(data, css, step)[0], whole, rtol=1e-14)
    np.testing.assert_allclose(whole, data.astype(np.float64) @ css, rtol=1e-13)


def test_noise_variance_matches_model():
    # flat grey cube: the d40 columns sum 65535, so every site sees s = 0.3 * 65535 DN
    h, w, level = 256, 320, 0.3
    cube = Cube(np.full((h, w, 31), level, np.float32), ARAD_WAVELENGTHS)
    s = level * 65535
    layout = stages.channel_layout("RGGB")
    for extra, quirk, read, prnu in ((0, False, 0, 0), (0, True, 0, 0), (0, False, 25.0, 0), (0, False, 0, 0.01)):
        p = track("realworld", dark_noise_quirk=quirk, read_noise=read, prnu=prnu)
        raw = capture_raw(cube, p, rng=11).astype(np.float64)
        gain = 5000 / s  # electrons per DN: mean green = targetNpe = 5000 e-
        dark = 10.0**2 if quirk else 10.0
        model = s / gain + (dark**2 + read**2) / gain**2 + (prnu * s) ** 2 + 1 / 12  # + rounding
        for ch in range(3):
            sites = stages.site_mask(raw.shape, "RGGB", ch)
            measured = raw[sites].var()
            assert abs(measured / model - 1) < 0.05, (ch, quirk, read, prnu, measured, model)
            assert abs(raw[sites].mean() - s) < 5 * np.sqrt(model / sites.sum())
        assert layout[0, 0] == 0


def test_noise_reproducible_with_seed():
    cube = make_cube(16, 20)
    a = simulate(cube, "realworld", rng=7)
    b = simulate(cube, "realworld", rng=np.random.default_rng(7))
    c = simulate(cube, "realworld", rng=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # the noise is real: it changes the image relative to the noise-free capture
    assert not np.array_equal(capture_raw(cube, "realworld", 7), capture_raw(cube, track("realworld", npe=None)))
    for bad in (1.5, -1, "7"):
        with pytest.raises(HsError, match=f"rng must be a seed .*not {bad!r}"):
            simulate(cube, "realworld", rng=bad)


def test_ntire2022_exposure_and_noise():
    cube = make_cube(32, 40)
    out = simulate(cube, "ntire2022", rng=0)
    assert out.shape == (32, 40, 3)
    assert abs(float(out.mean()) - 0.18) < 0.01
    # exposure is automatic: a darker scene gives the same mean
    assert abs(float(simulate(scale_brightness(cube, 0.25), "ntire2022", rng=0).mean()) - 0.18) < 0.01
    raw = capture_raw(cube, "ntire2022", rng=0)
    assert raw.ndim == 3 and raw.dtype == np.float64  # no mosaic, no raw quantisation


# --- bad input ---------------------------------------------------------------------------------


def test_bad_cubes_are_refused():
    good = make_cube(6, 8)
    narrow = Cube(np.ones((4, 4, 11), np.float32), np.arange(500.0, 601.0, 10.0))
    with pytest.raises(HsError, match="do not cover CSS 'cie1964'"):
        simulate(narrow)
    wide = Cube(np.ones((4, 4, 3), np.float32), [380.0, 550.0, 720.0])
    with pytest.raises(HsError, match="outside the range"):
        simulate(wide)
    # a stage's error names the cube's file
    tiny = Cube(np.full((1, 5, 31), 0.3, np.float32), good.wavelengths, {"source": "/data/tiny.mat"})
    with pytest.raises(HsError, match=r"^/data/tiny.mat: a Bayer mosaic needs at least 2x2 pixels"):
        simulate(tiny, "realworld", 0)
    with pytest.raises(HsError, match="a Bayer mosaic needs at least 2x2 pixels, got 1x1"):  # not "a black scene"
        simulate(Cube(np.full((1, 1, 31), 0.3, np.float32), good.wavelengths), "realworld", 0)
    with pytest.raises(HsError, match=r"^unknown track 'nosuch'"):  # the pipeline's fault, not the file's
        simulate(tiny, "nosuch", 0)
    # negatives within the noise (5 % of the maximum) are clipped to 0; larger ones refused
    neg = good.data.copy()
    hi = float(neg.max())
    neg[0, 0, 0] = -0.04 * hi
    noisy = simulate(good.with_data(neg))
    neg[0, 0, 0] = -0.06 * hi
    with pytest.raises(HsError, match="negative values .* more than 5% of its maximum"):
        simulate(good.with_data(neg))
    clipped = simulate(good.with_data(neg), track("clean", clip_negative=True))
    neg[0, 0, 0] = 0
    zero = simulate(good.with_data(neg))
    np.testing.assert_array_equal(clipped, zero)
    np.testing.assert_array_equal(noisy, zero)
    nan = good.data.copy()
    nan[1, 1, 1] = np.nan
    with pytest.raises(HsError, match="NaN"):
        simulate(good.with_data(nan, source="x.mat"))
    with pytest.raises(HsError, match="unknown track"):
        track("dirty")
    with pytest.raises(HsError, match="unknown pipeline parameter"):
        track("clean", nosie=1)
    with pytest.raises(HsError, match="Bayer pattern"):
        track("realworld", pattern="RGBG")


# --- transforms ----------------------------------------------------------------------------------


def test_shuffle_keeps_cube_and_rgb_aligned():
    cube = make_cube(18, 22)  # 18x22: two rows and two columns beyond the last 4x4 block
    shuffled_cube, shuffled_rgb = shuffle_patches(cube.data, simulate(cube), block=4, rng=5)
    np.testing.assert_array_equal(simulate(cube.with_data(shuffled_cube)), shuffled_rgb)
    assert not np.array_equal(shuffled_cube, cube.data)
    np.testing.assert_array_equal(shuffled_cube[16:], cube.data[16:])
    np.testing.assert_array_equal(shuffled_cube[:, 20:], cube.data[:, 20:])
    # a permutation of whole patches: the multiset of 4x4 patches is unchanged
    def patches(a):
        return sorted(a[i:i + 4, j:j + 4].tobytes() for i in range(0, 16, 4) for j in range(0, 20, 4))
    assert patches(shuffled_cube) == patches(cube.data)
    again = shuffle_patches(cube.data, block=4, rng=5)[0]
    np.testing.assert_array_equal(again, shuffled_cube)


def test_brightness():
    cube = make_cube(8, 10)
    half = scale_brightness(cube, 0.5)
    np.testing.assert_array_equal(half.data, cube.data * np.float32(0.5))
    assert half.meta["brightness"] == 0.5 and half.data.dtype == np.float32
    css = organiser_filters("cie_1964_w_gain.npz")
    expected = (np.clip(half.data @ css / 256, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(capture(half, "clean"), expected)
    with pytest.raises(HsError):
        scale_brightness(cube, -1)


def test_plot_css(tmp_path):
    from hstool.camera import plot_css

    path = plot_css(load_css("nikon5100"), tmp_path / "n.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(path, Path)


def test_dequantise_gives_the_middle_of_each_floored_code():
    """A floored code k holds [k, k + 1) / 255: the middle is the unbiased estimate of what the
    camera saw, and quantising it again gives k back; the top (clipped) code stays 1."""
    x = np.random.default_rng(3).random((40, 50, 3)).astype(np.float32)
    x[0, 0] = 1.0
    for bits, top in ((8, 255), (16, 65535)):
        codes = stages.quantise(x, bits)
        read = codes.astype(np.float32) / np.float32(top)  # as images read
        assert stages.code_bits(read) == bits
        mid = stages.dequantise(read, "floor")
        np.testing.assert_array_equal(stages.quantise(mid, bits), codes)
        expected = np.where(codes < top, (codes.astype(np.float64) + 0.5) / top, 1.0)
        np.testing.assert_allclose(mid, expected, rtol=0, atol=1e-6)
        assert abs(float(np.mean(mid - x)) * top) < 0.02  # unbiased; the codes alone are half a step low
        assert abs(float(np.mean(read - x)) * top + 0.5) < 0.02
        np.testing.assert_array_equal(stages.dequantise(read, "round"), read)  # cells centred on the codes
    assert stages.code_bits(x) is None  # a float image holds no codes: left as it is
    np.testing.assert_array_equal(stages.dequantise(x, "floor"), x)
    with pytest.raises(HsError, match="rounding must be one of"):
        stages.dequantise(x, "ceil")


def test_user_css_from_the_organisers_mat_files(tmp_path, hstool):
    """The organisers ship each CSS as .mat beside .npz: both read to the same values, v7.3 too."""
    import h5py

    data = Path(__file__).parent / "data"
    for mat, name in (("cie_1964_w_gain.mat", "cie1964"), ("example_D40_camera_w_gain.mat", "d40")):
        css = load_css(data / mat)
        np.testing.assert_array_equal(css.values, load_css(name).values)
        np.testing.assert_array_equal(css.wavelengths, ARAD_WAVELENGTHS)
    with h5py.File(tmp_path / "v73.mat", "w") as f:  # MATLAB v7.3 stores arrays transposed
        f["filters"] = organiser_filters("cie_1964_w_gain.npz").T
        f["bands"] = ARAD_WAVELENGTHS[None].T
    np.testing.assert_array_equal(load_css(tmp_path / "v73.mat").values, load_css("cie1964").values)
    (tmp_path / "bad.mat").write_bytes(b"not matlab")
    with pytest.raises(HsError, match="not a readable .mat file"):
        load_css(tmp_path / "bad.mat")
    cube = make_cube(8, 10)
    write_cube(cube, tmp_path / "in" / "A.mat")
    r = hstool("simulate", tmp_path / "in", tmp_path / "out", "--css", data / "cie_1964_w_gain.mat")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read_rgb(tmp_path / "out" / "A_clean.png"), simulate(cube, "clean"))
