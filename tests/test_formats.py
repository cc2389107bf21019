"""Round trips through real files for every cube and image format, and bad-input handling."""

from __future__ import annotations

import os

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st

from hstool.hsdata import (
    ARAD_WAVELENGTHS,
    Cube,
    HsError,
    atomic_path,
    read_cube,
    read_rgb,
    write_cube,
    write_rgb,
)
from hstool.hsdata.formats import envi as envi_format
from hstool.hsdata.formats import npy as npy_format
from hstool.hsdata.spectral import parse_band_grid

ENVI_TYPES = {
    1: np.uint8, 2: np.int16, 3: np.int32, 4: np.float32, 5: np.float64,
    12: np.uint16, 13: np.uint32, 14: np.int64, 15: np.uint64,
}


def write_envi_by_hand(folder, cube_hwb, wl, interleave, code, byte_order, offset=0, name="cube", extra=""):
    """An ENVI pair written with numpy and a hand-written header, independent of the code under test."""
    h, w, b = cube_hwb.shape
    order = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}[interleave]
    dtype = np.dtype(ENVI_TYPES[code]).newbyteorder("<" if byte_order == 0 else ">")
    raw = folder / f"{name}.raw"
    raw.write_bytes(b"\xab" * offset + np.ascontiguousarray(cube_hwb.transpose(order)).astype(dtype).tobytes())
    header = (
        f"ENVI\ndescription = {{hand written}}\nsamples = {w}\nlines = {h}\nbands = {b}\n"
        f"header offset = {offset}\nfile type = ENVI Standard\ndata type = {code}\n"
        f"interleave = {interleave}\nbyte order = {byte_order}\nwavelength units = Nanometers\n"
        "wavelength = {" + ", ".join(repr(float(x)) for x in wl) + "}\n" + extra
    )
    hdr = folder / f"{name}.hdr"
    hdr.write_text(header)
    return hdr, raw


# --------------------------------------------------------------------------------------- ENVI


@pytest.mark.parametrize("interleave", ["bil", "bip", "bsq"])
@pytest.mark.parametrize("code", sorted(ENVI_TYPES))
@pytest.mark.parametrize("byte_order", [0, 1])
def test_envi_read_every_layout_type_and_byte_order(tmp_path, interleave, code, byte_order):
    h, w, b = 5, 7, 4
    wl = np.array([450.5, 500.0, 550.25, 700.0])
    values = (np.arange(h * w * b).reshape(h, w, b) % 97 + 3).astype(ENVI_TYPES[code])
    if code == 2:
        values = values.astype(np.int16) - 50  # negative values survive
    hdr, raw = write_envi_by_hand(tmp_path, values, wl, interleave, code, byte_order)
    for path in (hdr, raw):  # either file of the pair opens the cube
        cube = read_cube(path)
        assert cube.data.dtype == np.float32
        assert cube.shape == (h, w, b)
        np.testing.assert_array_equal(cube.data, values.astype(np.float32))
        np.testing.assert_allclose(cube.wavelengths, wl)
        assert cube.meta["interleave"] == interleave
    native = read_cube(hdr, dtype=None)
    assert native.data.dtype.newbyteorder("=") == np.dtype(ENVI_TYPES[code])
    np.testing.assert_array_equal(native.data, values)


def test_envi_header_offset_and_micrometre_wavelengths(tmp_path):
    values = np.random.default_rng(1).random((3, 4, 2)).astype(np.float32)
    hdr, _ = write_envi_by_hand(tmp_path, values, [0.5, 0.6], "bil", 4, 0, offset=16)
    hdr.write_text(hdr.read_text().replace("Nanometers", "Micrometers"))
    cube = read_cube(hdr)
    np.testing.assert_array_equal(cube.data, values)
    np.testing.assert_allclose(cube.wavelengths, [500.0, 600.0])


@pytest.mark.parametrize("interleave", ["bil", "bip", "bsq"])
def test_envi_write_float32_and_uint16_round_trip(tmp_path, tmp_cube, interleave):
    cube = tmp_cube(norm_factor=4095.0)
    written = write_cube(cube, tmp_path / "f.hdr", interleave=interleave)
    assert sorted(p.name for p in written) == ["f.hdr", "f.raw"]
    back = read_cube(tmp_path / "f.hdr")
    np.testing.assert_array_equal(back.data, cube.data)
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths)
    assert back.meta["interleave"] == interleave
    assert back.meta["units"] == "reflectance" and back.meta["norm_factor"] == 4095.0
    # a cube's source is the file it was read from, never a key in the header it carries
    write_cube(back, tmp_path / "g.hdr", interleave=interleave)
    assert read_cube(tmp_path / "g.hdr").meta["source"] == str(tmp_path / "g.raw")
    (tmp_path / "g.hdr").write_text((tmp_path / "g.hdr").read_text() + "hstool source = /elsewhere.mat\n")
    assert read_cube(tmp_path / "g.hdr").meta["source"] == str(tmp_path / "g.raw")

    counts = cube.with_data(cube.data * 40000, units="dn")  # DN-like values, rounded to whole counts
    write_cube(counts, tmp_path / "u.raw", dtype="uint16", interleave=interleave)
    back = read_cube(tmp_path / "u.hdr", dtype=None)
    assert back.data.dtype == np.uint16 and back.meta["file_dtype"] == "uint16"
    np.testing.assert_array_equal(back.data, np.rint(counts.data))
    # the header an independent reader sees: spectral's own parser
    import spectral.io.envi as spy

    h = spy.read_envi_header(str(tmp_path / "u.hdr"))
    assert h["interleave"] == interleave and int(h["data type"]) == 12
    np.testing.assert_allclose([float(v) for v in h["wavelength"]], ARAD_WAVELENGTHS)
    specim = tmp_cube(4, 3, wavelengths=397.32 + 2.98643 * np.arange(204) + 1e-7 * np.arange(204) ** 2)
    write_cube(specim, tmp_path / "s.hdr", interleave=interleave)
    np.testing.assert_array_equal(read_cube(tmp_path / "s.hdr").wavelengths, specim.wavelengths)


def test_envi_metadata_keeps_its_types(tmp_path, tmp_cube):
    """hstool's header fields are JSON: a name of digits stays text, a flag a bool, a count an int,
    a list a list; a field an older hstool or another program wrote still reads as before."""
    meta = {"capture": "0001", "preset_white": False, "guarded_cells": 0, "tint_ms": 40.5,
            "dropped_columns": [15, 16], "formula": "(raw - dark) / (white - dark)"}
    write_cube(tmp_cube(4, 3, **meta), tmp_path / "m.hdr")
    back = read_cube(tmp_path / "m.hdr").meta
    for key, value in meta.items():
        assert back[key] == value and type(back[key]) is type(value), key
    import spectral.io.envi as spy

    assert spy.read_envi_header(str(tmp_path / "m.hdr"))["hstool capture"] == '"0001"'  # one line each
    text = (tmp_path / "m.hdr").read_text()
    (tmp_path / "m.hdr").write_text(text + "hstool legacy count = 3\nhstool legacy name = scene one\n")
    back = read_cube(tmp_path / "m.hdr").meta
    assert back["legacy_count"] == 3 and back["legacy_name"] == "scene one"


def test_envi_metadata_of_any_key_and_json_value_round_trips(tmp_path, tmp_cube):
    """Objects, None, numpy numbers, text with '=' or braces, keys with capitals or spaces: the
    header gives back what .npz gives back, exactly."""
    meta = {"nested": {"a": [1, 2], "b": "x=y"}, "n": None, "Operator": "Ann", "my key": 1, "f": np.float32(1.5),
            "i": np.int64(3), "arr": np.arange(3), "orientation": "upright = np.rot90(sensor, 3)", "uni": "Grüße {x}",
            "trail_": 3, "_lead": 4, "two__gaps": 5}
    want = {**meta, "f": 1.5, "i": 3, "arr": [0, 1, 2]}
    for name in ("m.hdr", "m.npz"):
        back = read_cube(write_cube(tmp_cube(3, 4, **meta), tmp_path / name)[0]).meta
        assert {k: back.get(k, "missing") for k in meta} == want, name


def test_envi_uint16_stores_counts_reflectance_x_10000_and_refuses_what_does_not_fit(tmp_path, tmp_cube):
    cube = tmp_cube(5, 6)  # reflectance
    data = cube.data.copy()
    data[0, 0, 0] = np.nan
    files = write_cube(cube.with_data(data), tmp_path / "r.hdr", dtype="UINT16")
    header = files[0].read_text()
    assert "reflectance scale factor = 10000" in header and "data ignore value = 65535" in header
    back = read_cube(files[0])
    assert np.isnan(back.data[0, 0, 0]) and back.meta["units"] == "reflectance"
    np.testing.assert_allclose(back.data, data, atol=0.5e-4 + 1e-7)  # one step of 1/10000
    for bad, message in ((cube.with_data(cube.data * 0.9, units=None), "would lose their digits as whole counts"),
                         (cube.with_data(cube.data * 1e5, units="dn"), "do not fit uint16"),
                         (cube.with_data(cube.data * -1.0 - 2000, units="dn"), "do not fit uint16")):
        with pytest.raises(HsError, match=message):
            write_cube(bad, tmp_path / "bad.hdr", dtype="uint16")
    assert not (tmp_path / "bad.hdr").exists()
    with pytest.raises(HsError, match="do not fit float32"):
        write_cube(Cube(np.full((2, 2, 31), 1e40), ARAD_WAVELENGTHS), tmp_path / "big.hdr")


def test_envi_dtype_none_keeps_a_memmap_and_default_read_is_a_private_copy(tmp_path):
    h, w, b = 64, 48, 31  # the memmap path is size-independent; a small file shows it
    values = np.random.default_rng(2).random((h, w, b)).astype(np.float32)
    hdr, _ = write_envi_by_hand(tmp_path, values, ARAD_WAVELENGTHS, "bil", 4, 0)
    mapped = read_cube(hdr, dtype=None)
    assert isinstance(mapped.data, np.memmap)
    np.testing.assert_array_equal(mapped.data[10:12, 5:9], values[10:12, 5:9])
    loaded = read_cube(hdr)
    assert loaded.data.flags.writeable and loaded.data.flags.c_contiguous
    loaded.data *= 2  # an in-memory copy: changing it leaves the file alone
    np.testing.assert_array_equal(read_cube(hdr).data, values)


def test_envi_bad_inputs(tmp_path):
    values = np.ones((4, 5, 3), np.float32)
    hdr, raw = write_envi_by_hand(tmp_path, values, [400, 500, 600], "bsq", 4, 0)
    raw.write_bytes(raw.read_bytes()[:-8])  # truncated binary
    with pytest.raises(HsError, match="truncated") as e:
        read_cube(hdr)
    assert e.value.path == raw
    raw.write_bytes(b"\0" * (4 * 5 * 3 * 4 + 40))  # header sizes smaller than the file
    with pytest.raises(HsError, match="mismatched"):
        read_cube(hdr)
    hdr, raw = write_envi_by_hand(tmp_path, values, [400, 500, 600], "bsq", 4, 0, name="il")
    hdr.write_text(hdr.read_text().replace("interleave = bsq", "interleave = bxx"))
    with pytest.raises(HsError, match="interleave") as e:
        read_cube(hdr)
    assert e.value.path == hdr
    hdr.write_text(hdr.read_text().replace("interleave = bxx", "interleave = bsq").replace("data type = 4", "data type = 6"))
    with pytest.raises(HsError, match="data type"):
        read_cube(hdr)
    lone = tmp_path / "lone.hdr"
    lone.write_text((tmp_path / "il.hdr").read_text())
    with pytest.raises(HsError, match="no binary"):
        read_cube(lone)
    with pytest.raises(HsError, match="no such file"):
        read_cube(tmp_path / "missing.hdr")


wl_lists = st.lists(st.floats(300, 2500, allow_nan=False), min_size=1, max_size=12, unique=True).map(sorted)


@settings(max_examples=40, deadline=None)
@given(
    wl=wl_lists,
    interleave=st.sampled_from(["bil", "bip", "bsq"]),
    upper=st.booleans(),
    spaces=st.sampled_from(["", " ", "\n  "]),
)
def test_envi_header_parsing_property(tmp_path_factory, wl, interleave, upper, spaces):
    """Any increasing wavelength list, layout and whitespace in the header survives parsing."""
    folder = tmp_path_factory.mktemp("h")
    values = np.arange(2 * 3 * len(wl), dtype=np.float32).reshape(2, 3, len(wl))
    hdr, _ = write_envi_by_hand(folder, values, wl, interleave, 4, 0)
    text = hdr.read_text().replace("wavelength = {", "wavelength = {" + spaces).replace(", ", "," + spaces)
    if upper:
        text = text.replace(f"interleave = {interleave}", f"interleave = {interleave.upper()}")
    hdr.write_text(text)
    cube = read_cube(hdr)
    np.testing.assert_array_equal(cube.wavelengths, wl)
    np.testing.assert_array_equal(cube.data, values)


# ---------------------------------------------------------------------------------------- MATLAB


def test_mat_v73_written_by_plain_h5py_like_arad_1k(tmp_path):
    """ARAD_1K: MATLAB v7.3 stores H x W x C column-major, so h5py sees cube as (C, W, H) = (31, 512, 482)."""
    h, w, c = 482, 512, 31
    stored = np.zeros((c, w, h), np.float32)
    stored += np.arange(c, dtype=np.float32)[:, None, None] / 100  # band index in every pixel
    stored[7, 500, 10] = 5.0  # pixel (row 10, column 500), band 7
    stored[3, 2, 470] = 9.0  # pixel (row 470, column 2), band 3
    path = tmp_path / "ARAD_1K_0001.mat"
    with h5py.File(path, "w") as f:
        f["cube"] = stored
        f["bands"] = ARAD_WAVELENGTHS.reshape(-1, 1)  # MATLAB row vector 1 x 31
        f["norm_factor"] = np.array([[4095.0]])
    cube = read_cube(path)
    assert cube.shape == (482, 512, 31) and (cube.height, cube.width) == (482, 512)
    assert cube.data[10, 500, 7] == 5.0 and cube.data[470, 2, 3] == 9.0
    assert cube.data[0, 0, 30] == np.float32(0.30)
    np.testing.assert_array_equal(cube.wavelengths, ARAD_WAVELENGTHS)
    assert cube.meta["norm_factor"] == 4095.0 and cube.meta["mat_version"] == "7.3"


def test_mat_v73_write_round_trip_and_matlab_layout(tmp_path, tmp_cube):
    cube = tmp_cube(norm_factor=2.5)
    path = tmp_path / "out.mat"
    assert write_cube(cube, path) == [path]
    with open(path, "rb") as fh:
        assert fh.read(19) == b"MATLAB 7.3 MAT-file"  # the header MATLAB's load looks for
    with h5py.File(path, "r") as f:  # what h5py users (and the challenge scorers) see
        assert f["cube"].shape == (31, 32, 24)  # C x W x H
        np.testing.assert_array_equal(f["cube"][()], cube.data.transpose(2, 1, 0))
        assert f["cube"].attrs["MATLAB_class"] == b"single"
        np.testing.assert_array_equal(np.ravel(f["bands"][()]), ARAD_WAVELENGTHS)
        assert float(np.ravel(f["norm_factor"][()])[0]) == 2.5
    back = read_cube(path)
    np.testing.assert_array_equal(back.data, cube.data)
    assert back.meta["norm_factor"] == 2.5


@pytest.mark.parametrize("fmt", ["mat", "mat5"])
def test_mat_keeps_units_as_a_matlab_char_variable(tmp_path, tmp_cube, fmt):
    """The units (a preview lights reflectance with D65) survive .mat as they do .npz and ENVI."""
    path = tmp_path / "u.mat"
    write_cube(tmp_cube().with_data(tmp_cube().data, units="reflectance"), path, fmt)
    assert read_cube(path).meta["units"] == "reflectance"
    if fmt == "mat":
        with h5py.File(path, "r") as f:  # what MATLAB reads as a 1 x 11 char
            assert f["units"].attrs["MATLAB_class"] == b"char" and f["units"].shape == (11, 1)
    else:
        assert str(scipy.io.loadmat(path)["units"][0]) == "reflectance"
    write_cube(tmp_cube().with_data(tmp_cube().data, units=None), tmp_path / "n.mat", fmt)
    assert "units" not in read_cube(tmp_path / "n.mat").meta
    unicode = "µW/(cm²·sr·nm) Ω😀"  # beyond ASCII and the basic plane: UTF-16 surrogates in v7.3
    write_cube(tmp_cube().with_data(tmp_cube().data, units=unicode), tmp_path / "w.mat", fmt)
    assert read_cube(tmp_path / "w.mat").meta["units"] == unicode


def test_a_foreign_units_variable_is_ignored_not_fatal(tmp_path):
    """Another tool's `units` (a number, a group) is not hstool's: the cube still reads."""
    data = np.ones((2, 3, 31))
    scipy.io.savemat(tmp_path / "v5.mat", {"cube": data, "units": 3.5})
    with h5py.File(tmp_path / "v73.mat", "w") as f:
        f["cube"] = data.T
        f["units"] = np.array([1.0])
        f.create_group("other")
    with h5py.File(tmp_path / "v73g.mat", "w") as f:
        f["cube"] = data.T
        f.create_group("units")
    for name in ("v5.mat", "v73.mat", "v73g.mat"):
        cube = read_cube(tmp_path / name)
        assert cube.shape == (2, 3, 31) and "units" not in cube.meta, name


def test_mat_v5_round_trip_and_ntire2020_files(tmp_path, tmp_cube):
    cube = tmp_cube(wavelengths=np.arange(400.0, 721.0, 20.0))
    path = tmp_path / "v5.mat"
    write_cube(cube, path, version="5")
    m = scipy.io.loadmat(path)  # scipy sees the MATLAB axis meaning: H x W x C
    assert m["cube"].shape == (24, 32, 17)
    np.testing.assert_array_equal(m["cube"], cube.data)
    back = read_cube(path)
    np.testing.assert_array_equal(back.data, cube.data)
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths)
    assert back.meta["mat_version"] == "5"
    # an NTIRE 2020 file: only `cube`, H x W x C float64, no band list (ARAD's grid assumed)
    arr = np.random.default_rng(3).random((6, 9, 31))
    scipy.io.savemat(tmp_path / "ARAD_HS_0451.mat", {"cube": arr})
    back = read_cube(tmp_path / "ARAD_HS_0451.mat")
    assert back.shape == (6, 9, 31) and back.data.dtype == np.float32
    np.testing.assert_allclose(back.data, arr, rtol=1e-6)
    np.testing.assert_array_equal(back.wavelengths, ARAD_WAVELENGTHS)


def test_mat_bad_inputs(tmp_path):
    scipy.io.savemat(tmp_path / "nocube.mat", {"rad": np.ones((2, 2, 31))})
    with pytest.raises(HsError, match="no 'cube'.*rad"):
        read_cube(tmp_path / "nocube.mat")
    with h5py.File(tmp_path / "nocube73.mat", "w") as f:
        f["rad"] = np.ones((31, 2, 2))
    with pytest.raises(HsError, match="no 'cube'"):
        read_cube(tmp_path / "nocube73.mat")
    with h5py.File(tmp_path / "group.mat", "w") as f:  # a MATLAB struct named cube
        f.create_group("cube")["data"] = np.ones((31, 2, 2))
    with pytest.raises(HsError, match="not a readable MATLAB v7.3"):
        read_cube(tmp_path / "group.mat")
    (tmp_path / "corrupt.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x07" * 200)
    with pytest.raises(HsError, match="not a readable MATLAB") as e:
        read_cube(tmp_path / "corrupt.mat")
    assert e.value.path == tmp_path / "corrupt.mat"
    scipy.io.savemat(tmp_path / "odd.mat", {"cube": np.ones((2, 2, 7))})
    with pytest.raises(HsError, match="bands"):
        read_cube(tmp_path / "odd.mat")


# ----------------------------------------------------------------------------------------- NumPy


def test_npy_and_npz_round_trip(tmp_path, tmp_cube):
    cube = tmp_cube(norm_factor=3.0, source_scene="x")
    write_cube(cube, tmp_path / "c.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), cube.data)
    back = read_cube(tmp_path / "c.npy")
    np.testing.assert_array_equal(back.data, cube.data)
    np.testing.assert_array_equal(back.wavelengths, ARAD_WAVELENGTHS)
    assert back.data.flags.writeable
    assert isinstance(read_cube(tmp_path / "c.npy", dtype=None).data, np.memmap)

    other = tmp_cube(wavelengths=np.linspace(420, 680, 14))
    write_cube(other, tmp_path / "c.npz")
    back = read_cube(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.data, other.data)
    np.testing.assert_allclose(back.wavelengths, other.wavelengths)
    assert back.meta["units"] == "reflectance" and back.meta["format"] == "npz"
    # .npy stores no grid: a cube whose grid would not read back is refused at writing, and a
    # foreign .npy of another band count at reading
    for grid in (np.linspace(420, 680, 14), ARAD_WAVELENGTHS + 10):
        with pytest.raises(HsError, match="stores no wavelengths"):
            write_cube(tmp_cube(wavelengths=grid), tmp_path / "o.npy")
    assert not (tmp_path / "o.npy").exists()
    np.save(tmp_path / "o.npy", other.data)
    with pytest.raises(HsError, match="wavelengths"):
        read_cube(tmp_path / "o.npy")
    np.save(tmp_path / "flat.npy", np.ones((4, 5)))
    with pytest.raises(HsError, match=r"\(H, W, B\)"):
        read_cube(tmp_path / "flat.npy")


# ---------------------------------------------------------------------------------------- images


@pytest.mark.filterwarnings("ignore:ImageIO.s vendored tifffile:DeprecationWarning")  # the independent writer
def test_rgb_png_tiff_keep_bit_depth(tmp_path):
    rng = np.random.default_rng(4)
    rgb16 = rng.integers(0, 65536, (9, 11, 3)).astype(np.uint16)
    rgb8 = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    for name, arr in [("a16.png", rgb16), ("a8.png", rgb8), ("a16.tif", rgb16), ("a8.tiff", rgb8)]:
        write_rgb(tmp_path / name, arr)
        got = read_rgb(tmp_path / name)
        assert got.dtype == np.float32 and got.shape == (9, 11, 3)
        np.testing.assert_array_equal(got, arr.astype(np.float32) / np.iinfo(arr.dtype).max, err_msg=name)
    # files from an independent writer (imageio/Pillow), channel order included
    iio.imwrite(tmp_path / "pil8.png", rgb8)
    np.testing.assert_array_equal(read_rgb(tmp_path / "pil8.png"), rgb8 / np.float32(255))
    iio.imwrite(tmp_path / "pil16.tif", rgb16)
    np.testing.assert_array_equal(read_rgb(tmp_path / "pil16.tif"), rgb16 / np.float32(65535))
    rgba = np.concatenate([rgb8, np.full((9, 11, 1), 77, np.uint8)], axis=-1)
    write_rgb(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(iio.imread(tmp_path / "rgba.png"), rgba)  # alpha stays alpha
    np.testing.assert_array_equal(read_rgb(tmp_path / "rgba.png"), rgb8 / np.float32(255))
    # a 16-bit file whose values need all 16 bits: not silently truncated to 8
    assert len(np.unique(np.round(read_rgb(tmp_path / "a16.png") * 65535) % 256)) > 1


def test_rgb_jpeg_and_bad_images(tmp_path):
    y, x = np.mgrid[0:32, 0:40]
    rgb = np.stack([y * 8, x * 6, np.full_like(x, 128)], axis=-1).astype(np.uint8)  # smooth
    write_rgb(tmp_path / "a.jpg", rgb, jpeg_quality=95, jpeg_sampling="444")
    got = read_rgb(tmp_path / "a.jpg")
    assert got.shape == (32, 40, 3)
    assert np.abs(got - rgb / 255).mean() < 0.01
    assert got[0, 39, 1] > 0.8 and got[31, 0, 0] > 0.8  # R grows down, G grows right: RGB order
    with pytest.raises(HsError, match="8-bit"):
        write_rgb(tmp_path / "b.jpg", rgb.astype(np.uint16))
    (tmp_path / "fake.png").write_text("not an image\n")
    with pytest.raises(HsError, match="not a readable image") as e:
        read_rgb(tmp_path / "fake.png")
    assert e.value.path == tmp_path / "fake.png"
    write_rgb(tmp_path / "grey.png", rgb[..., 0])
    with pytest.raises(HsError, match="greyscale"):
        read_rgb(tmp_path / "grey.png")
    from PIL import Image  # grey with alpha: OpenCV hands it over as four channels

    Image.fromarray(np.stack([rgb[..., 0], rgb[..., 1]], axis=-1), "LA").save(tmp_path / "grey_alpha.png")
    with pytest.raises(HsError, match="greyscale"):
        read_rgb(tmp_path / "grey_alpha.png")
    with pytest.raises(HsError, match="RGB image, not a hyperspectral cube"):
        read_cube(tmp_path / "a.jpg")


@pytest.mark.parametrize("suffix", [".jpg", ".tif", ".png", ".webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_image_is_read_upright_by_its_exif_orientation(tmp_path, orientation, suffix):
    """A phone stores a portrait photo sideways with an EXIF orientation; viewers (and Pillow's
    exif_transpose, the reference here) turn it upright, and so must the reconstruction: JPEG and
    TIFF through OpenCV (which cannot rotate some TIFFs: imageio then), PNG's eXIf, WebP (imageio)."""
    from PIL import Image, ImageOps

    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:4, :8, 0] = 255  # a red corner and a green ramp: every rotation and flip differs
    rgb[..., 1] = np.arange(24)[None, :] * 10
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"p{suffix}"
    options = {".jpg": {"quality": 100}, ".webp": {"lossless": True}}.get(suffix, {})
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), **options)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path))) / 255
    got = read_rgb(path)
    assert got.shape == want.shape == ((16, 24, 3) if orientation <= 4 else (24, 16, 3))  # 5-8 turn it
    assert np.abs(got - want).max() < 1e-6
    if orientation == 6:  # 90 degrees clockwise: the stored top-left corner is now top-right
        assert got[0, -1, 0] > 0.9 and got[-1, 0, 0] < 0.1


# ------------------------------------------------------------------------ band-grid parsing


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(200, 1500, allow_nan=False).map(lambda v: round(v, 2)),
    step=st.floats(0.1, 50).map(lambda v: round(v, 3)).filter(lambda v: v > 0),
    n=st.integers(1, 400),
)
def test_parse_band_grid_property(start, step, n):
    stop = start + step * (n - 1)
    grid = parse_band_grid(f"{start}:{stop!r}:{step}")
    assert grid.size == n
    assert grid[0] == start and abs(grid[-1] - stop) < 1e-6 * max(1.0, stop)
    assert np.all(np.diff(grid) > 0)
    listed = parse_band_grid(",".join(repr(float(v)) for v in grid))
    np.testing.assert_array_equal(listed, grid)


@given(st.text(max_size=20))
@settings(max_examples=200, deadline=None)
def test_parse_band_grid_never_crashes(text):
    """Arbitrary text gives a grid of finite increasing values or an HsError, nothing else."""
    try:
        grid = parse_band_grid(text)
    except HsError:
        return
    assert grid.size >= 1 and np.all(np.isfinite(grid)) and np.all(np.diff(grid) > 0)


@pytest.mark.parametrize("bad", ["0:inf:1", "400,nan,500", "700:400:10", "400:700:0", "400:700", "", "a,b", "500,400", "0:1e9:0.001"])
def test_parse_band_grid_rejects(bad):
    with pytest.raises(HsError):
        parse_band_grid(bad)


# ----------------------------------------------------------- outputs: atomic, never over inputs


def test_existing_outputs_and_inputs_are_protected(tmp_path, tmp_cube):
    cube = tmp_cube()
    for name in ("c.mat", "c.npy", "c.npz", "c.hdr"):
        write_cube(cube, tmp_path / name)
        before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        with pytest.raises(HsError, match="exists"):
            write_cube(cube, tmp_path / name)
        assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
        src = read_cube(tmp_path / name)
        with pytest.raises(HsError, match="input"):  # even with overwrite: never the file it came from
            write_cube(src, tmp_path / name, overwrite=True)
        write_cube(cube.with_data(cube.data * 2), tmp_path / name, overwrite=True)
        np.testing.assert_allclose(read_cube(tmp_path / name).data, cube.data * 2)
    write_rgb(tmp_path / "p.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(HsError, match="exists"):
        write_rgb(tmp_path / "p.png", np.zeros((2, 2, 3), np.uint8))


def test_failed_writes_leave_no_file(tmp_path, tmp_cube, monkeypatch):
    cube = tmp_cube()

    def half_then_fail(fh, arr, *a, **k):
        fh.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(npy_format.np, "save", half_then_fail)
    with pytest.raises(HsError, match="c.npy: No space left on device$"):  # one line naming the file
        write_cube(cube, tmp_path / "c.npy")
    monkeypatch.undo()

    def save_fails(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(envi_format, "_write_binary", save_fails)
    with pytest.raises(HsError, match="No space"):
        write_cube(cube, tmp_path / "e.hdr")
    monkeypatch.undo()

    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.mat") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert os.listdir(tmp_path) == []


def test_cube_validation():
    with pytest.raises(HsError, match="3-D"):
        Cube(np.zeros((3, 4)), ARAD_WAVELENGTHS)
    with pytest.raises(HsError, match="31 wavelengths"):
        Cube(np.zeros((3, 4, 5)), ARAD_WAVELENGTHS)
    with pytest.raises(HsError, match="increase"):
        Cube(np.zeros((3, 4, 2)), [500, 400])


def test_mat5_format_name_and_output_path(tmp_path, tmp_cube):
    from hstool.hsdata import output_path

    target = output_path(tmp_path, "scene", "mat5")
    assert target == tmp_path / "scene.mat"
    write_cube(tmp_cube(), target, "mat5")
    assert "cube" in scipy.io.loadmat(target)  # scipy reads only v5


def test_written_files_are_readable_by_others(tmp_path, tmp_cube):
    old = os.umask(0o022)
    try:
        for p in write_cube(tmp_cube(), tmp_path / "c.mat") + write_cube(tmp_cube(), tmp_path / "c.hdr"):
            assert p.stat().st_mode & 0o777 == 0o644, p
    finally:
        os.umask(old)


@pytest.mark.parametrize("fmt", ["mat", "mat5"])
def test_mat_files_hold_no_time_of_writing(tmp_path, tmp_cube, monkeypatch, fmt):
    """The same cube gives the same bytes whenever it is written (reproducible outputs)."""
    import time

    cube = tmp_cube(norm_factor=2.0)
    write_cube(cube, tmp_path / "a.mat", fmt)
    later = time.time() + 86400 * 400  # a year and a month on
    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(time, "asctime", lambda *a: time.ctime(later))
    monkeypatch.setattr(time, "strftime", lambda f, *a: f.replace("%Y", "2031"))
    write_cube(cube, tmp_path / "b.mat", fmt)
    assert (tmp_path / "a.mat").read_bytes() == (tmp_path / "b.mat").read_bytes()
    assert (tmp_path / "a.mat").read_bytes()[:128].rstrip(b" \x00").startswith(b"MATLAB ")
    np.testing.assert_array_equal(read_cube(tmp_path / "b.mat").data, cube.data)


def test_complex_cubes_are_refused_before_any_cast(tmp_path):
    """Casting to float32 would silently drop the imaginary part: every reader refuses instead."""
    data = np.ones((2, 3, 31), np.complex64) * (1 + 2j)
    np.save(tmp_path / "c.npy", data)
    scipy.io.savemat(tmp_path / "c.mat", {"cube": data})
    for name in ("c.npy", "c.mat"):
        for dtype in (np.float32, None):
            with pytest.raises(HsError, match="complex values"):
                read_cube(tmp_path / name, dtype=dtype)


@pytest.mark.parametrize("binary", ["s", "s.sli", "s.img"])
def test_an_envi_cube_never_overwrites_its_own_header_or_binary(tmp_path, tmp_cube, binary):
    write_cube(tmp_cube(), tmp_path / "s.hdr")
    (tmp_path / "s.raw").rename(tmp_path / binary)  # binaries go by any of ENVI's names
    back = read_cube(tmp_path / "s.hdr")
    assert back.meta["source"] == str(tmp_path / binary)
    for target in ("s.hdr", binary):
        with pytest.raises(HsError, match="overwrite an input"):
            write_cube(back, tmp_path / target, "envi", overwrite=True)


def test_cubes_from_lists_and_no_integer_reads(tmp_path, tmp_cube):
    cube = tmp_cube(3, 4)
    from_list = Cube(cube.data.tolist(), cube.wavelengths)
    np.testing.assert_array_equal(from_list.data, cube.data)
    with pytest.raises(HsError, match="3-D"):
        Cube("abc", cube.wavelengths)
    write_cube(cube, tmp_path / "c.mat")
    with pytest.raises(HsError, match="read as a float type"):  # an int cast would zero reflectance
        read_cube(tmp_path / "c.mat", dtype=np.int32)


def test_envi_writer_refuses_a_folder_it_cannot_write_in_one_line(tmp_path, monkeypatch):
    """A folder that takes no file (read-only; as root only a mount or a flag does that, so the
    refusal is simulated): one line naming the folder, as the other writers say it."""
    import tempfile

    from conftest import make_cube

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(HsError, match=r"cannot write here \(Operation not permitted\)") as e:
        write_cube(make_cube(4, 5), tmp_path / "out" / "x.hdr", "envi")
    assert e.value.path == tmp_path / "out"


def test_envi_bands_stored_red_first_read_blue_first(tmp_path, tmp_cube):
    """A header listing wavelengths from the red end (some sensors store bands so) reads as the
    same cube with its bands in increasing order; a list that goes both ways is the header's error."""
    import re

    cube = tmp_cube(4, 5)
    write_cube(cube.with_data(cube.data[..., ::-1].copy()), tmp_path / "d.hdr")  # the values red first
    text = (tmp_path / "d.hdr").read_text()
    down = ", ".join(repr(float(w)) for w in cube.wavelengths[::-1])
    (tmp_path / "d.hdr").write_text(re.sub(r"wavelength = \{[^}]*\}", "wavelength = {" + down + "}", text))
    back = read_cube(tmp_path / "d.hdr")
    np.testing.assert_array_equal(back.wavelengths, cube.wavelengths)
    np.testing.assert_array_equal(back.data, cube.data)
    zigzag = ", ".join(repr(float(w)) for w in np.r_[cube.wavelengths[:2][::-1], cube.wavelengths[2:]])
    (tmp_path / "d.hdr").write_text(re.sub(r"wavelength = \{[^}]*\}", "wavelength = {" + zigzag + "}", text))
    with pytest.raises(HsError, match="neither increases nor decreases strictly") as err:
        read_cube(tmp_path / "d.hdr")
    assert err.value.path == tmp_path / "d.hdr"


def test_envi_header_fields_travel_and_a_float_read_applies_ignore_value_and_scale(tmp_path):
    """An int16 reflectance file as many sensors write it (scaled by 10000, -9999 for no data,
    bands red first, fwhm and map info): a float read gives 0-1 reflectance with NaN for no data,
    the other fields travel in meta["envi"] (per-band lists in the cube's band order, 1-based
    default bands renumbered) into an ENVI copy, and are dropped on another band grid."""
    from spectral.io import envi as spy

    from hstool.hsdata.describe import describe

    wl = np.array([700.0, 600.0, 500.0, 450.0])  # stored red first
    values = (np.arange(3 * 5 * 4).reshape(3, 5, 4) * 97 % 10000).astype(np.int16)
    values[1, 2, 0] = -9999  # no data in the 700 nm band
    extra = (
        "reflectance scale factor = 10000\ndata ignore value = -9999\nfwhm = {13, 12, 11, 10}\n"
        "default bands = {1, 2, 3}\nmap info = {UTM, 1, 1, 500000, 4000000, 1, 1, 33, North}\n"
        "sensor type = Specim IQ\n"
    )
    hdr, _ = write_envi_by_hand(tmp_path, values, wl, "bil", 2, 1, extra=extra)
    cube = read_cube(hdr)
    expected = values[..., ::-1].astype(np.float32) / np.float32(10000)
    expected[1, 2, 3] = np.nan
    np.testing.assert_array_equal(cube.data, expected)
    assert cube.meta["units"] == "reflectance"
    fields = cube.meta["envi"]
    assert fields["fwhm"] == ["10", "11", "12", "13"]  # 450 nm first, as the bands
    assert fields["default bands"] == ["4", "3", "2"]  # 700, 600, 500 nm: the same bands
    assert fields["sensor type"] == "Specim IQ" and fields["map info"][0] == "UTM"
    assert "reflectance scale factor" not in fields and "data ignore value" not in fields

    native = read_cube(hdr, dtype=None)  # "as stored" too: stored numbers that mean something else once applied
    np.testing.assert_array_equal(native.data, expected)
    summary = describe(hdr)  # info: the file's type, the values every command reads
    assert summary["dtype"] == "int16" and summary["nan_count"] == 1 and summary["units"] == "reflectance"
    assert summary["max"] == pytest.approx(float(np.nanmax(expected)))

    files = write_cube(cube, tmp_path / "copy.hdr")
    written = spy.read_envi_header(str(files[0]))  # an independent reader of the copy
    assert written["fwhm"] == ["10", "11", "12", "13"] and written["default bands"] == ["4", "3", "2"]
    assert written["map info"][-1] == "North" and written["sensor type"] == "Specim IQ"
    assert "reflectance scale factor" not in written and "data ignore value" not in written
    back = read_cube(files[0])
    np.testing.assert_array_equal(back.data, expected)
    assert back.meta["envi"] == fields

    other = cube.with_data(cube.data[..., :3], wavelengths=[450.0, 525.0, 600.0])
    assert set(other.meta["envi"]) == {"description", "map info", "sensor type"}
    assert "fwhm" not in spy.read_envi_header(str(write_cube(other, tmp_path / "r.hdr")[0]))
    swapped = Cube(cube.data[..., :2].copy(), [450.0, 500.0], cube.meta)  # a library caller's new data
    assert "fwhm" not in spy.read_envi_header(str(write_cube(swapped, tmp_path / "s.hdr")[0]))


def test_envi_header_saved_with_a_byte_order_mark_reads(tmp_path, tmp_cube):
    """Notepad saves UTF-8 with a BOM before "ENVI"; the header still reads, and is left as it was."""
    cube = tmp_cube(3, 4)
    hdr = write_cube(cube, tmp_path / "b.hdr")[0]
    marked = b"\xef\xbb\xbf" + hdr.read_bytes()
    hdr.write_bytes(marked)
    np.testing.assert_array_equal(read_cube(hdr).data, cube.data)
    assert hdr.read_bytes() == marked


def test_envi_bad_scale_or_ignore_value_names_the_header(tmp_path):
    values = np.ones((2, 3, 4), np.float32)
    wl = np.array([450.0, 500.0, 550.0, 600.0])
    for extra, message in (("reflectance scale factor = 0\n", "must be positive"),
                           ("data ignore value = none\n", "'data ignore value' is not a number")):
        hdr, _ = write_envi_by_hand(tmp_path, values, wl, "bsq", 4, 0, extra=extra)
        with pytest.raises(HsError, match=message) as err:
            read_cube(hdr)
        assert err.value.path == hdr


def test_a_folder_is_neither_read_as_a_cube_nor_replaced_by_one(tmp_path, tmp_cube):
    (tmp_path / "x.mat").mkdir()
    with pytest.raises(HsError, match="a folder, not a cube file"):
        read_cube(tmp_path / "x.mat")
    with pytest.raises(HsError, match="a folder has the output's name"):
        write_cube(tmp_cube(), tmp_path / "x.mat", overwrite=True)
    assert (tmp_path / "x.mat").is_dir() and not list((tmp_path / "x.mat").iterdir())


def test_overwriting_an_envi_pair_removes_the_binary_of_the_header_replaced(tmp_path, tmp_cube):
    """X.hdr + X.img from another program, replaced by hstool's X.hdr + X.raw: X.img goes too, or
    it would sit beside the new header, mismatched."""
    old = tmp_cube(4, 5, seed=1)
    write_cube(old, tmp_path / "X.img")  # hstool writes the binary name it is given
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.hdr", "X.img"]
    new = tmp_cube(6, 7, seed=2)
    write_cube(new, tmp_path / "X.hdr", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.hdr", "X.raw"]
    np.testing.assert_array_equal(read_cube(tmp_path / "X.hdr").data, new.data)


def test_overwriting_an_envi_pair_with_a_bare_binary_removes_it(tmp_path, tmp_cube):
    """X.hdr + a bare X (a common ENVI layout), replaced with a cube of the same size: X goes,
    and the cube read back is the new one."""
    old, new = tmp_cube(4, 5, seed=1), tmp_cube(4, 5, seed=2)
    write_cube(old, tmp_path / "X.raw")
    (tmp_path / "X.raw").rename(tmp_path / "X")
    write_cube(new, tmp_path / "X.hdr", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.hdr", "X.raw"]
    np.testing.assert_array_equal(read_cube(tmp_path / "X.hdr").data, new.data)


def test_overwriting_an_envi_pair_keeps_files_that_are_not_its_binary(tmp_path, tmp_cube):
    write_cube(tmp_cube(4, 5), tmp_path / "X.hdr")
    (tmp_path / "X").write_text("notes, not a binary")  # a bare name ENVI could read as one
    (tmp_path / "X.dat").write_bytes(b"too short to be the old cube")
    write_cube(tmp_cube(6, 7, seed=2), tmp_path / "X.hdr", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X", "X.dat", "X.hdr", "X.raw"]
    assert read_cube(tmp_path / "X.hdr").shape == (6, 7, 31)  # the binary of the header's size, X.raw


def test_a_cube_needs_wavelengths_and_write_cube_a_cube(tmp_path):
    with pytest.raises(HsError, match="a cube needs its band centres"):
        Cube(np.zeros((2, 2, 3)), None)
    with pytest.raises(HsError, match="write_cube takes a Cube"):
        write_cube(np.zeros((2, 2, 31)), tmp_path / "x.mat")
    assert not (tmp_path / "x.mat").exists()


def test_overwriting_an_envi_pair_with_two_candidate_binaries_deletes_neither(tmp_path, tmp_cube):
    """X.img and a bare X of the same size beside X.hdr: which was the cube's is a guess, so both
    stay; the new X.raw is what the header reads, even beside a newer file of its size."""
    import os

    write_cube(tmp_cube(4, 5, seed=1), tmp_path / "X.img")
    (tmp_path / "X").write_bytes((tmp_path / "X.img").read_bytes()[::-1])  # the user's, same size
    new = tmp_cube(6, 7, seed=2)
    write_cube(new, tmp_path / "X.hdr", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X", "X.hdr", "X.img", "X.raw"]
    (tmp_path / "X.dat").write_bytes((tmp_path / "X.raw").read_bytes()[::-1])
    os.utime(tmp_path / "X.dat", (4e9, 4e9))  # newer, and of the new cube's size
    np.testing.assert_array_equal(read_cube(tmp_path / "X.hdr").data, new.data)


def test_wrong_kinds_of_input_are_hserrors_naming_the_problem(tmp_path, tmp_cube):
    data = np.ones((2, 3, 4), np.float32)
    wl = [450.0, 500.0, 550.0, 600.0]
    for make, message in ((lambda: Cube(data, wl, [1, 2]), "meta is a dict"),
                          (lambda: Cube(data, ["a", "b", "c", "d"]), "wavelengths must be numbers"),
                          (lambda: Cube(np.full((2, 3, 4), "x"), wl), "holds numbers, not <U1"),
                          (lambda: read_cube(write_cube(tmp_cube(2, 3), tmp_path / "c.npz")[0], dtype="flt"),
                           "is no numpy type")):
        with pytest.raises(HsError, match=message):
            make()
    assert Cube(data, wl, None).meta == {}
    rgb = np.zeros((4, 5, 3), np.uint8)
    for call, message in ((lambda: write_rgb(tmp_path / "a.png", np.zeros((4, 5, 5), np.uint8)), "an image is"),
                          (lambda: write_rgb(tmp_path / "a.png", np.zeros(7, np.uint8)), "an image is"),
                          (lambda: write_rgb(tmp_path / "a.png", rgb, png_compression=15), "png_compression is 0-9"),
                          (lambda: write_rgb(tmp_path / "a.jpg", rgb, jpeg_quality=200), "jpeg_quality 0-100"),
                          (lambda: write_rgb(rgb, tmp_path / "a.png"), "takes the path first")):
        with pytest.raises(HsError, match=message):
            call()
    assert not list(tmp_path.glob("a.*"))


def test_a_truncated_jpeg_is_refused_not_filled_in(tmp_path):
    """libjpeg decodes a cut-off JPEG anyway, the rest grey, saying so only on stderr: such a file
    is an error naming it (a real-world-track image is a JPEG). Padding bytes between segments,
    which decoders warn of but read whole, are no damage."""
    rng = np.random.default_rng(0)
    whole = write_rgb(tmp_path / "whole.jpg", (rng.random((64, 80, 3)) * 255).astype(np.uint8))
    data = whole.read_bytes()
    scan = data.find(b"\xff\xda")
    (tmp_path / "padded.jpg").write_bytes(data[:scan] + b"\x00\x00" + data[scan:])
    np.testing.assert_array_equal(read_rgb(tmp_path / "padded.jpg"), read_rgb(whole))
    for name, cut in (("cut.jpg", len(data) * 6 // 10), ("tail.jpg", len(data) - 50), ("no_end.jpg", len(data) - 2)):
        (tmp_path / name).write_bytes(data[:cut])
        with pytest.raises(HsError, match="damaged JPEG: it ends before its image does") as err:
            read_rgb(tmp_path / name)
        assert err.value.path == tmp_path / name

def test_writer_options_and_names_that_would_misread_are_refused(tmp_path, tmp_cube):
    """A format the file's name contradicts (it would not read back), bad .mat options, a
    radiance cube with one glint whose other values would round to 0-2 counts in uint16; numeric
    spellings of valid options are taken."""
    cube = tmp_cube(5, 6)
    for path, fmt in (("x.npy", "mat"), ("x.hdr", "mat"), ("x.mat", "envi")):
        with pytest.raises(HsError, match=f"format {fmt} contradicts the file name"):
            write_cube(cube, tmp_path / path, fmt)
    assert not list(tmp_path.iterdir())
    for options, message in (({"compression": 11}, "gzip level 0-9"), ({"compression": "5"}, "gzip level 0-9"),
                             ({"version": "6"}, "unknown MATLAB version")):
        with pytest.raises(HsError, match=message):
            write_cube(cube, tmp_path / "m.mat", **options)
    for version, expected in ((7.3, "7.3"), (5, "5")):
        assert read_cube(write_cube(cube, tmp_path / "m.mat", version=version, overwrite=True)[0]).meta["mat_version"] == expected
    glint = cube.data * 2
    glint[0, 0] = 1500
    with pytest.raises(HsError, match="would lose their digits as whole counts"):
        write_cube(cube.with_data(glint, units="radiance"), tmp_path / "g.hdr", dtype=np.uint16)


def test_a_truncated_jpeg_named_png_is_refused_by_its_bytes(tmp_path):
    rng = np.random.default_rng(1)
    data = write_rgb(tmp_path / "w.jpg", (rng.random((32, 40, 3)) * 255).astype(np.uint8)).read_bytes()
    (tmp_path / "photo.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(HsError, match="damaged JPEG"):
        read_rgb(tmp_path / "photo.png")
