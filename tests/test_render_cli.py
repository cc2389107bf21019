"""``hstool render`` and ``hstool synth`` through the CLI, against independent colour-science values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hstool.hsdata import ARAD_WAVELENGTHS, Cube, read_cube, read_rgb, write_cube
from hstool.hsdata.synth import generate_scene

PATCHES = ("dark skin", "blue sky", "foliage", "orange", "neutral 5 (.70 D)")


def _checker_cube(tmp_path):
    """One 6x6 block per BabelColor patch, as a reflectance cube on ARAD's bands."""
    import colour

    chart = colour.SDS_COLOURCHECKERS["BabelColor Average"]
    spectra = np.array([[chart[p][w] for w in ARAD_WAVELENGTHS] for p in PATCHES], np.float32)
    data = np.repeat(np.repeat(spectra[None], 6, axis=0), 6, axis=1)  # (6, 30, 31)
    path = tmp_path / "checker.npz"
    write_cube(Cube(data, ARAD_WAVELENGTHS, {"units": "reflectance"}), path)
    return path


def _expected_srgb(patch: str) -> np.ndarray:
    """colour-science's own answer: CIE 1931 2°, D65, XYZ -> sRGB with its transfer function."""
    import warnings

    import colour

    sd = colour.SDS_COLOURCHECKERS["BabelColor Average"][patch]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour trims the patch to the CMFs' range, as it should
        xyz = colour.sd_to_XYZ(sd, colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"],
                               colour.SDS_ILLUMINANTS["D65"]) / 100  # fmt: skip
    return np.clip(colour.XYZ_to_sRGB(xyz), 0, 1)


def test_render_colour_checker_patches_match_colour_science(hstool, tmp_path):
    cube = _checker_cube(tmp_path)
    out = tmp_path / "checker.png"
    result = hstool("render", cube, out, "--exposure", "1")
    assert result.exit_code == 0, result.output
    rgb = read_rgb(out)
    assert rgb.shape == (6, 30, 3)
    for i, patch in enumerate(PATCHES):
        got = rgb[3, 6 * i + 3]
        np.testing.assert_allclose(got, _expected_srgb(patch), atol=0.006, err_msg=patch)  # 1.5 levels


def test_render_writes_preview_of_cube_size_and_spectra_plot(hstool, tmp_path):
    cube = generate_scene(2, (36, 44))
    path = tmp_path / "scene.mat"
    write_cube(cube, path)
    out = tmp_path / "scene.png"
    result = hstool("render", path, out, "--spectra", "3,4 40,30", "--spectra", "10,5", "--json")
    assert result.exit_code == 0, result.output
    assert read_rgb(out).shape == (36, 44, 3)
    plot = tmp_path / "scene_spectra.png"
    assert plot.is_file() and read_rgb(plot).shape[0] > 100
    import json

    report = json.loads(result.stdout)
    assert [(p["x"], p["y"]) for p in report["pixels"]] == [(3, 4), (40, 30), (10, 5)]
    np.testing.assert_allclose(report["pixels"][1]["spectrum"], cube.data[30, 40], atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--spectra", "44,3"], "outside"),
        (["--spectra", "3;x"], "not X,Y"),
        (["--plot", "p.png"], "--spectra"),
        (["--spectra", "3,4", "--plot", "p.jpg"], "p.jpg: plots are written as PNG"),
        (["--exposure", "inf"], "exposure must be a positive number"),
        (["--exposure", "0"], "exposure must be a positive number"),
    ],
)
def test_render_bad_input_is_one_line_error(hstool, tmp_path, args, message):
    path = tmp_path / "c.npz"
    write_cube(generate_scene(0, (36, 44)), path)
    result = hstool("render", path, tmp_path / "o.png", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "o.png").exists()


def test_render_refuses_existing_output_and_missing_cube(hstool, tmp_path):
    path = tmp_path / "c.npz"
    write_cube(generate_scene(0, (16, 16)), path)
    out = tmp_path / "o.png"
    out.write_bytes(b"keep")
    result = hstool("render", path, out)
    assert result.exit_code == 1 and "exists" in result.output
    assert out.read_bytes() == b"keep"
    result = hstool("render", tmp_path / "missing.mat", tmp_path / "x.png")
    assert result.exit_code == 1 and "missing.mat" in result.output


def test_synth_cli_writes_readable_cubes_with_norm_factor(hstool, tmp_path):
    result = hstool("synth", tmp_path, "--n", "2", "--size", "24x32", "--seed", "5", "--split", "test", "--preview")
    assert result.exit_code == 0, result.output
    for seed in (5, 6):
        cube = read_cube(tmp_path / f"SYNTH_test_{seed:04d}.mat")
        ref = generate_scene(seed, (24, 32), split="test")
        assert cube.shape == (24, 32, 31)
        np.testing.assert_array_equal(cube.data, ref.data)
        assert cube.meta["norm_factor"] == pytest.approx(ref.meta["norm_factor"])
        assert read_rgb(tmp_path / f"SYNTH_test_{seed:04d}_preview.png").shape == (24, 32, 3)
    # existing scenes are skipped, a new grid and format work
    again = hstool("synth", tmp_path, "--n", "1", "--size", "24x32", "--seed", "5", "--split", "test")
    assert again.exit_code == 0 and "skipped" in again.output
    npz = hstool("synth", tmp_path, "--n", "1", "--size", "16x16", "--bands", "420:680:20", "-f", "npz")
    assert npz.exit_code == 0, npz.output
    cube = read_cube(tmp_path / "SYNTH_train_0000.npz")
    assert cube.bands == 14 and cube.meta["norm_factor"] > 0
    # a scene whose preview exists is skipped whole, and --json reports it incomplete (exit 1: a file
    # asked for is missing)
    (tmp_path / "SYNTH_train_0001_preview.png").write_bytes(b"keep")
    res = hstool("synth", tmp_path, "--n", "2", "--size", "16x16", "--seed", "1", "--preview", "--json")
    assert res.exit_code == 1 and "1 job(s) incomplete" in res.stderr, res.output
    report = json.loads(res.stdout)
    assert report["skipped"] == [str(tmp_path / "SYNTH_train_0001.mat")] and report["failed"] == []
    assert report["incomplete"] == [{"existing": [str(tmp_path / "SYNTH_train_0001_preview.png")],
                                     "missing": [str(tmp_path / "SYNTH_train_0001.mat")]}]
    assert [Path(r["output"]).name for r in report["written"]] == ["SYNTH_train_0002.mat"]
    assert not (tmp_path / "SYNTH_train_0001.mat").exists()
    assert (tmp_path / "SYNTH_train_0001_preview.png").read_bytes() == b"keep"


@pytest.mark.parametrize(
    "args",
    [["--split", "val"], ["--size", "big"], ["--size", "4x4"], ["--bands", "300:1000:10"], ["-f", "tiff"],
     ["--bands", "400:700:5", "-f", "npy"]],
)
def test_synth_cli_bad_options(hstool, tmp_path, args):
    result = hstool("synth", tmp_path / "out", "--n", "1", *args)
    assert result.exit_code == 1
    assert "error" in result.output
    assert not (tmp_path / "out").exists()


def test_render_float64_beyond_float32_and_empty_cubes(hstool, tmp_path):
    huge = np.full((8, 8, 31), 1e300) * np.linspace(1, 2, 31)
    np.save(tmp_path / "huge.npy", huge)
    r = hstool("render", tmp_path / "huge.npy", tmp_path / "h.png")
    assert r.exit_code == 0, r.output
    assert read_rgb(tmp_path / "h.png").max() > 0.5  # not the black of an overflowed float32 cast
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 31), np.float32))
    for command in (("render", tmp_path / "empty.npy", tmp_path / "e.png"), ("info", tmp_path / "empty.npy")):
        r = hstool(*command)
        assert r.exit_code == 1 and "cube is empty" in r.output and "Traceback" not in r.output


def test_render_checks_both_folders_before_writing_and_refuses_image_input_format(hstool, tmp_path):
    cube = tmp_path / "c.npy"
    write_cube(generate_scene(0, (16, 20)), cube)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the plot's folder would be")
    r = hstool("render", cube, tmp_path / "p.png", "--spectra", "1,1", "--plot", blocker / "s.png")
    assert r.exit_code == 1 and "output folder is not a directory" in r.stderr
    assert not (tmp_path / "p.png").exists()  # the preview is not left behind without its plot
    r = hstool("render", cube, tmp_path / "p.png", "--in-format", "image")
    assert r.exit_code == 1 and "reads hyperspectral cubes" in r.stderr and not (tmp_path / "p.png").exists()


def test_synth_refuses_an_output_it_cannot_write_before_generating(hstool, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = hstool("synth", tmp_path / "afile" / "sub", "--n", "2", "--size", "8x8")
    assert r.exit_code == 1 and "cannot write here" in r.stderr and "failed" not in r.stderr  # no scene made


def test_render_as_reflectance_for_a_file_that_keeps_no_units(hstool, tmp_path):
    """A reflectance cube saved as .npy previews as light unless --as reflectance says what it is;
    then it previews as the .npz that kept its units does."""
    cube = generate_scene(1, (16, 20)).with_data(np.full((16, 20, 31), 0.4, np.float32), units="reflectance")
    write_cube(cube, tmp_path / "r.npz")
    write_cube(cube, tmp_path / "r.npy")
    for args in ((tmp_path / "r.npz", tmp_path / "kept.png"), (tmp_path / "r.npy", tmp_path / "light.png"),
                 (tmp_path / "r.npy", tmp_path / "told.png", "--as", "reflectance")):
        assert hstool("render", *args).exit_code == 0
    kept, light, told = (read_rgb(tmp_path / f"{n}.png") for n in ("kept", "light", "told"))
    np.testing.assert_array_equal(told, kept)
    assert np.abs(light - kept).max() > 0.03  # a flat spectrum seen as light is pinker than under D65
    r = hstool("render", tmp_path / "r.npy", tmp_path / "x.png", "--as", "radiance")
    assert r.exit_code == 1 and "--as takes reflectance or light" in r.stderr
