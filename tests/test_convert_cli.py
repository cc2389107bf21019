"""`hstool convert`: cubes between formats and band grids, through real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hstool.hsdata import read_cube, write_cube, write_rgb
from hstool.hsdata.spectral import resample_bands


def test_a_cube_goes_through_every_format_and_back_unchanged(hstool, tmp_path, tmp_cube):
    cube = tmp_cube(12, 17, norm_factor=0.8125)
    write_cube(cube, tmp_path / "a" / "scene.mat")
    steps = [("a", "b", "envi", "scene.hdr"), ("b", "c", "npz", "scene.npz"), ("c", "d", "mat5", "scene.mat"),
             ("d", "e", "mat", "scene.mat"), ("e", "f", "npy", "scene.npy")]
    for src, dst, fmt, name in steps:
        r = hstool("convert", tmp_path / src, tmp_path / dst, "-f", fmt, "--json")
        assert r.exit_code == 0, r.output
        written = json.loads(r.stdout)["written"]
        assert [w["output"] for w in written] == [str(tmp_path / dst / name)]
        got = read_cube(tmp_path / dst / name)
        np.testing.assert_array_equal(got.data, cube.data)  # float32 all the way: not a bit lost
        np.testing.assert_array_equal(got.wavelengths, cube.wavelengths)
        if fmt != "npy":  # .npy holds the array alone
            assert got.meta["units"] == "reflectance" and got.meta["norm_factor"] == 0.8125, (fmt, got.meta)
            assert "mat_version" not in got.meta or fmt.startswith("mat")  # the .mat's own version stays behind
    header = (tmp_path / "b" / "scene.hdr").read_text()
    assert "norm factor" in header and "mat version" not in header


def test_bands_resample_and_record_it(hstool, tmp_path, tmp_cube):
    cube = tmp_cube(9, 11)
    write_cube(cube, tmp_path / "in" / "s.npz")
    r = hstool("convert", tmp_path / "in", tmp_path / "out", "-f", "npz", "--bands", "400:700:20")
    assert r.exit_code == 0, r.output
    got = read_cube(tmp_path / "out" / "s.npz")
    np.testing.assert_array_equal(got.wavelengths, np.arange(400.0, 701.0, 20.0))
    np.testing.assert_allclose(got.data, cube.data[..., ::2], rtol=1e-6)  # linear at existing centres: the bands
    assert got.meta["resampled_from"] == "31 bands, 400-700 nm (linear)"
    r = hstool("convert", tmp_path / "in" / "s.npz", tmp_path / "g", "-f", "npz", "--bands", "420:680:5",
               "--method", "gaussian", "--fwhm", "12")
    assert r.exit_code == 0, r.output
    want = resample_bands(cube.data, cube.wavelengths, np.arange(420.0, 681.0, 5.0), "gaussian", 12.0)
    np.testing.assert_allclose(read_cube(tmp_path / "g" / "s.npz").data, want, rtol=1e-6)


def test_an_envi_source_keeps_its_header_fields_through_convert(hstool, tmp_path, tmp_cube):
    """map info and sensor type reach the ENVI copy; fwhm only while the band grid stays."""
    from spectral.io import envi as spy

    cube = tmp_cube(5, 6)
    fields = {"map info": ["UTM", "1", "1", "500000", "4000000", "1", "1", "33", "North"],
              "sensor type": "Specim IQ", "fwhm": ["10"] * cube.bands}
    write_cube(cube.with_data(cube.data, envi=fields), tmp_path / "in" / "s.hdr")
    for out, extra in (("same", []), ("resampled", ["--bands", "400:700:20"])):
        r = hstool("convert", tmp_path / "in", tmp_path / out, "-f", "envi", *extra)
        assert r.exit_code == 0, r.output
        header = spy.read_envi_header(str(tmp_path / out / "s.hdr"))
        assert header["map info"] == fields["map info"] and header["sensor type"] == "Specim IQ"
        assert ("fwhm" in header) == (out == "same"), header


def test_bad_options_and_inputs_are_refused_before_any_work(hstool, tmp_path, tmp_cube):
    write_cube(tmp_cube(8, 8), tmp_path / "in" / "s.npz")
    before = (tmp_path / "in" / "s.npz").read_bytes()
    for args, message in (
        (["--bands", "400:700:20", "-f", "npy"], "npy"),
        (["--fwhm", "5"], "act with --bands"),
        (["--bands", "400:700:20", "--fwhm", "5"], "linear has none"),
        (["--method", "cubic"], "unknown resampling method 'cubic'"),
        (["-f", "tiff"], "--format must be one of"),
        (["--bands", "700:400:10"], "band grid '700:400:10'"),
    ):
        r = hstool("convert", tmp_path / "in", tmp_path / "out", *args)
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, (args, r.output)
        assert not (tmp_path / "out").exists()
    r = hstool("convert", tmp_path / "in")
    assert r.exit_code == 2 and "Invalid value for CUBES... OUT" in r.output
    # the output would replace the input itself: refused, with or without --overwrite
    for extra in ([], ["--overwrite"]):
        r = hstool("convert", tmp_path / "in", tmp_path / "in", "-f", "npz", *extra)
        assert r.exit_code == 1 and "s.npz" in r.output, r.output
    assert (tmp_path / "in" / "s.npz").read_bytes() == before


def test_a_bad_file_fails_alone_and_existing_outputs_are_skipped(hstool, tmp_path, tmp_cube):
    write_cube(tmp_cube(8, 9), tmp_path / "in" / "good.mat")
    (tmp_path / "in" / "bad.npz").write_bytes(b"not a cube")
    r = hstool("convert", tmp_path / "in", tmp_path / "out", "-f", "envi", "--preview", "--json")
    assert r.exit_code == 1, r.output
    report = json.loads(r.stdout)
    assert [w["input"] for w in report["written"]] == [str(tmp_path / "in" / "good.mat")]
    assert len(report["failed"]) == 1 and "bad.npz" in report["failed"][0]["input"]
    assert (tmp_path / "out" / "good_preview.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.hdr", "good.raw", "good_preview.png"]
    mtime = (tmp_path / "out" / "good.raw").stat().st_mtime_ns
    (tmp_path / "in" / "bad.npz").unlink()
    r = hstool("convert", tmp_path / "in", tmp_path / "out", "-f", "envi", "--preview")
    assert r.exit_code == 0 and "skipped 1 cube(s) with existing outputs" in r.output
    assert (tmp_path / "out" / "good.raw").stat().st_mtime_ns == mtime


def test_names_with_brackets_print_as_they_are(hstool, tmp_path, tmp_cube):
    """rich reads [old] as a style and [/] as a closing tag: file names must not go through markup."""
    write_cube(tmp_cube(6, 7), tmp_path / "in" / "scene [old].mat")
    (tmp_path / "in" / "bad[bold].mat").write_bytes(b"junk")
    out = tmp_path / "out[/]"
    r = hstool("convert", tmp_path / "in", out, "-f", "npz")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"{tmp_path / 'in' / 'bad[bold].mat'}: not a readable" in r.stderr
    assert "│ scene [old].mat │ scene [old].npz │" in r.stdout and (out / "scene [old].npz").is_file()
    r = hstool("info", tmp_path / "x[/].mat")
    assert r.exit_code == 1 and "x[/].mat: no such file" in r.stderr


def test_a_cube_without_a_preview_fails_whole(hstool, tmp_path, tmp_cube):
    """A near-infrared cube has no sRGB preview: with --preview it fails before its cube is
    written (all of a cube's files or none), so a rerun does not skip it as done."""
    write_cube(tmp_cube(6, 7, wavelengths=np.arange(900.0, 1001.0, 10.0)), tmp_path / "in" / "nir.npz")
    write_cube(tmp_cube(6, 7), tmp_path / "in" / "vis.npz")
    r = hstool("convert", tmp_path / "in", tmp_path / "out", "-f", "npz", "--preview")
    assert r.exit_code == 1 and "nir.npz" in r.stderr and "visible" in r.stderr, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["vis.npz", "vis_preview.png"]
    r = hstool("convert", tmp_path / "in", tmp_path / "out", "-f", "npz")  # without: converted
    assert r.exit_code == 0 and (tmp_path / "out" / "nir.npz").is_file(), r.output


def test_each_cube_is_converted_once_and_two_cubes_never_share_an_output(hstool, tmp_path, tmp_cube):
    write_cube(tmp_cube(5, 6), tmp_path / "in" / "e.hdr")  # an ENVI pair: e.hdr + e.raw
    r = hstool("convert", tmp_path / "in" / "e.hdr", tmp_path / "in" / "e.raw", tmp_path / "in", tmp_path / "out",
               "-f", "npz", "--json")
    assert r.exit_code == 0, r.output
    assert [w["output"] for w in json.loads(r.stdout)["written"]] == [str(tmp_path / "out" / "e.npz")]
    write_cube(tmp_cube(5, 6, seed=1), tmp_path / "in" / "e.npz")  # another cube, the same name
    r = hstool("convert", tmp_path / "in", tmp_path / "out2", "-f", "mat")
    assert r.exit_code == 1 and "e.hdr and " in r.output and "e.npz would both write this output" in r.output
    assert not (tmp_path / "out2").exists()
    r = hstool("convert", tmp_path / "in" / "e.hdr", tmp_path / "out3", "--method", "gaussian")
    assert r.exit_code == 1 and "act with --bands" in r.output


def test_format_and_method_take_any_case(hstool, tmp_path, tmp_cube):
    write_cube(tmp_cube(8, 10), tmp_path / "in" / "a.npz")
    r = hstool("convert", tmp_path / "in", tmp_path / "out", "-f", "NPZ", "--bands", "400:700:20", "--method",
               "Gaussian", "--json")
    assert r.exit_code == 0, r.output
    assert [Path(w["output"]).name for w in json.loads(r.stdout)["written"]] == ["a.npz"]


def test_named_files_of_another_kind_are_set_aside_not_collided(hstool, tmp_path, tmp_cube):
    """A shell glob (cal/*) names each cube's sidecar and preview too: those are set aside with one
    note, the cubes converted (they had collided into one output and stopped the batch)."""
    cal = tmp_path / "cal"
    write_cube(tmp_cube(8, 10), cal / "a.hdr")
    (cal / "a.json").write_text("{}")
    write_rgb(cal / "a.png", np.zeros((8, 10, 3), np.uint8))
    named = sorted(cal.iterdir())  # a.hdr, a.json, a.png, a.raw
    r = hstool("convert", *named, tmp_path / "out", "-f", "npz", "--json")
    assert r.exit_code == 0, r.output
    assert "set aside 2 file(s) that are not cubes: a.json, a.png" in r.stderr
    assert [Path(w["output"]).name for w in json.loads(r.stdout)["written"]] == ["a.npz"]
    r = hstool("simulate", *named, tmp_path / "sim", "--json")  # the pair named twice is one cube
    assert r.exit_code == 0, r.output
    assert [Path(w["output"]).name for w in json.loads(r.stdout)["written"]] == ["a_clean.png"]
    r = hstool("convert", cal / "a.hdr", cal / "a.raw", tmp_path / "out3", "--in-format", "ENVI", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["written"]) == 1  # any case; the pair once
    r = hstool("convert", cal / "a.hdr", tmp_path / "out4", "--in-format", "IMAGE")
    assert r.exit_code == 1 and "reads hyperspectral cubes" in r.stderr
    r = hstool("recon", *named, "--model", "linear", "--out", tmp_path / "rec", "--json")
    assert "set aside 3 file(s) that are not images: a.hdr, a.json, a.raw" in r.stderr
    r = hstool("convert", cal / "a.json", tmp_path / "o2")
    assert r.exit_code == 1 and "no mat/envi/npy/npz files among the inputs" in r.stderr


def test_raw_specim_parts_are_converted_with_a_note_to_calibrate_them(hstool, tmp_path):
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    sc = write_synthetic_capture(tmp_path / "raw", "s", 0, samples=16, lines=8, ref_lines=4)
    r = hstool("convert", sc.path / "capture", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    assert [row["raw_specim"] for row in json.loads(r.stdout)["written"]] == [True, True, True]
    assert "3 input(s) are raw Specim IQ capture parts" in " ".join(r.stderr.split())
    r = hstool("convert", tmp_path / "out", tmp_path / "again", "-f", "npz")  # its copies: no longer raw parts
    assert r.exit_code == 0 and "raw Specim" not in r.stderr
