"""Calibration of synthetic Specim IQ captures against their known answers, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from hstool.camera.calibration import (
    calibrate,
    challenge_columns,
    detect_bad_columns,
    parse_columns,
)
from hstool.hsdata import ARAD_WAVELENGTHS, HsError, read_cube
from hstool.hsdata.specim import SpecimCapture
from hstool.hsdata.specim_synthetic import write_synthetic_capture
from hstool.hsdata.spectral import resample_bands, resampling_matrix

BAD = (9, 30, 31, 55)  # includes an adjacent pair


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic_capture(
        tmp_path_factory.mktemp("caps"), "scene", 1, samples=64, lines=48, bad_columns=BAD, gain=True
    )


def _raw_sensor(path, name, lines, samples, bands=204):
    """Raw scene straight from the BIL bytes, (lines, samples, bands) float64: independent of SPy."""
    raw = np.fromfile(path / "capture" / f"{name}.raw", dtype="<u2").astype(np.float64)
    return raw.reshape(lines, bands, samples).transpose(0, 2, 1)


def _ref_mean(path, prefix, name, samples, bands=204):
    raw = np.fromfile(path / "capture" / f"{prefix}{name}.raw", dtype="<u2").astype(np.float64)
    return raw.reshape(-1, bands, samples).mean(axis=0).T  # (samples, bands)


def _good(bad, samples=64):
    return np.setdiff1d(np.arange(samples), bad)


def mrae(a, b):
    return float(np.mean(np.abs(a - b) / b))


def test_reflectance_recovers_ground_truth_at_native_bands(synth):
    cube = calibrate(synth.path, drop_columns="none", bands=None)
    assert cube.shape == (64, 48, 204) and cube.meta["units"] == "reflectance"
    good = _good(BAD)
    assert mrae(cube.data[good], synth.reflectance.data[good]) <= 1e-3
    # the planted interference is real: those rows are far off
    assert mrae(cube.data[list(BAD)], synth.reflectance.data[list(BAD)]) > 1e-2


def test_reflectance_resampled_to_arad_grid(synth):
    cube = calibrate(synth.path, drop_columns=list(BAD))
    assert cube.shape == (60, 48, 31)
    np.testing.assert_array_equal(cube.wavelengths, ARAD_WAVELENGTHS)
    truth = resample_bands(synth.reflectance.data[_good(BAD)], synth.reflectance.wavelengths, ARAD_WAVELENGTHS)
    assert mrae(cube.data, truth) <= 1e-3
    assert cube.meta["dropped_columns"] == list(BAD) and cube.meta["tint_ms"] == 40.0


@pytest.mark.parametrize("method", ["linear", "gaussian", "triangular"])
@pytest.mark.parametrize("drop", ["none", "bad"])  # kept columns a slice, or a gather
def test_band_integration_folds_into_the_pass(synth, method, drop):
    drop = list(BAD) if drop == "bad" else drop
    full = calibrate(synth.path, drop_columns=drop, bands=None)
    grid = np.arange(420.0, 981.0, 20.0)
    cube = calibrate(synth.path, drop_columns=drop, bands=grid, method=method)
    expected = resample_bands(full.data, full.wavelengths, grid, method=method)
    np.testing.assert_allclose(cube.data, expected, rtol=2e-5, atol=2e-6)
    assert cube.meta.get("fwhm_nm") == (None if method == "linear" else 20.0)  # the width used is recorded


def test_no_extrapolation_unless_asked(synth):
    with pytest.raises(HsError, match="outside the source range"):
        calibrate(synth.path, bands="350:700:10")
    cube = calibrate(synth.path, bands="390:400:10", extrapolate=True, drop_columns="none")
    assert cube.bands == 2 and np.isfinite(cube.data).all()


def test_auto_detector_finds_exactly_the_planted_columns(synth):
    found, _ = detect_bad_columns(SpecimCapture.open(synth.path))
    assert found == list(BAD)
    cube = calibrate(synth.path, drop_columns="auto")
    assert cube.meta["dropped_columns"] == list(BAD) and cube.height == 64 - len(BAD)


def test_auto_detector_on_another_capture(tmp_path):
    sc = write_synthetic_capture(tmp_path, "other", 7, samples=96, lines=8, ref_lines=10, bad_columns=(0, 47, 95), seed=5)
    assert detect_bad_columns(SpecimCapture.open(sc.path))[0] == [0, 47, 95]


def test_default_drop_reproduces_512_to_482(tmp_path):
    sc = write_synthetic_capture(tmp_path, "wide", 2, samples=512, lines=3, ref_lines=4, bad_columns=())
    cube = calibrate(sc.path)
    assert cube.shape == (482, 3, 31)
    assert cube.meta["dropped_columns"] == list(range(15)) + list(range(497, 512)) == challenge_columns(512)
    truth = resample_bands(sc.reflectance.data[15:497], sc.reflectance.wavelengths, ARAD_WAVELENGTHS)
    assert mrae(cube.data, truth) <= 2e-3  # 4 reference lines only: noisier references
    assert cube.data.T.flags.c_contiguous  # band-major memory, as a v7.3 .mat stores it: no transpose to write


def test_library_options_are_checked_before_reading(tmp_path):
    for kwargs, message in (({"method": "linear", "fwhm": 5.0}, "linear has none"),
                            ({"to": "reflectance", "gain": np.ones((48, 204))}, "a gain is used for radiance"),
                            ({"max_bad_fraction": float("nan")}, "max_bad_fraction must be in"),
                            ({"chunk_lines": 0}, "chunk_lines must be >= 1"),
                            ({"to": "albedo"}, "unknown calibration mode")):
        with pytest.raises(HsError, match=message):  # a capture that does not exist is never opened
            calibrate(tmp_path / "no capture here", **kwargs)


def test_parse_columns():
    assert parse_columns("0:3, 7", 10) == [0, 1, 2, 7]
    assert parse_columns("none", 10) == [] and parse_columns("auto", 10) == "auto"
    assert parse_columns(None, 10) == "challenge"
    with pytest.raises(HsError, match="0..9"):
        parse_columns("8:12", 10)
    for spec in ("x:y", "-5:3", "10:5", "4:4", "-2", "1:2:3", "", "  ", ",", " , "):  # reversed, empty, nothing
        with pytest.raises(HsError, match="--drop-columns"):
            parse_columns(spec, 10)
    assert parse_columns("500:512", None) == list(range(500, 512))  # syntax alone: no sensor yet


def test_dn_is_dark_subtracted_raw(synth):
    cube = calibrate(synth.path, to="dn", drop_columns="none", bands=None)
    raw = _raw_sensor(synth.path, "scene", 48, 64)
    dark = _ref_mean(synth.path, "DARKREF_", "scene", 64)
    np.testing.assert_allclose(cube.data, np.rot90(raw - dark, 3), rtol=1e-6, atol=1e-3)
    assert cube.meta["units"] == "dn"


def test_radiance_formula(synth):
    cube = calibrate(synth.path, to="radiance", drop_columns="none", bands=None, gain=synth.gain_path)
    raw = _raw_sensor(synth.path, "scene", 48, 64)
    dark = _ref_mean(synth.path, "DARKREF_", "scene", 64)
    expected = np.rot90((raw - dark) * synth.gain.astype(np.float64) / 40.0, 3)  # L = (raw - dark) * G / t
    np.testing.assert_allclose(cube.data, expected, rtol=1e-5, atol=1e-7)
    # physically: the synthetic gain maps the panel to a known radiance, so L = R * L_panel
    panel = synth.gain[0] * synth.response[0] / 40.0
    good = _good(BAD)
    assert mrae(cube.data[good], synth.reflectance.data[good] * panel) <= 1e-3
    assert cube.meta["units"] == "radiance" and "gain" in cube.meta["formula"]


def test_radiance_needs_a_gain(tmp_path):
    sc = write_synthetic_capture(tmp_path, "nogain", 0, samples=16, lines=4, ref_lines=4, bad_columns=())
    with pytest.raises(HsError, match="gain"):
        calibrate(sc.path, to="radiance")


def test_preset_white_uses_whitedark_and_the_tint_ratio(tmp_path):
    sc = write_synthetic_capture(
        tmp_path, "preset", 4, samples=40, lines=24, bad_columns=(), preset_white=True, white_tint_ms=16.0
    )
    cap = SpecimCapture.open(sc.path)
    assert cap.preset_white and cap.white.tint_ms == 16.0
    cube = calibrate(cap, drop_columns="none", bands=None)
    assert mrae(cube.data, sc.reflectance.data) <= 1e-3
    assert "whitedark" in cube.meta["formula"] and cube.meta["tint_ratio"] == pytest.approx(0.4)
    # its dark frame lost: refused, not calibrated with the scene's dark (3-7x the error)
    for f in (sc.path / "capture").glob("WHITEDARKREF_*"):
        f.unlink()
    with pytest.raises(HsError, match="white-dark reference listed in manifest.xml is missing"):
        SpecimCapture.open(sc.path)


def _drop_tint(header: Path) -> None:
    header.write_text("".join(line for line in header.read_text().splitlines(True) if not line.startswith("tint")))


def test_integration_times_come_from_the_metadata_and_the_white_dark_frame(tmp_path):
    """A preset white at 16 ms, the scene at 40: with the scene's tint only in metadata/NAME.xml
    and the white's only in its dark frame's header, the ratio is still 0.4, not 1 (2.5x too bright)."""
    sc = write_synthetic_capture(tmp_path, "p", 4, samples=40, lines=24, bad_columns=(), preset_white=True,
                                 white_tint_ms=16.0)
    want = calibrate(sc.path, drop_columns="none")
    _drop_tint(sc.path / "capture" / "p.hdr")
    _drop_tint(sc.path / "capture" / "WHITEREF_p.hdr")
    cap = SpecimCapture.open(sc.path)
    assert (cap.scene.tint_ms, cap.tint_ms, cap.white.tint_ms, cap.white_tint_ms) == (None, 40.0, None, 16.0)
    got = calibrate(cap, drop_columns="none")
    np.testing.assert_array_equal(got.data, want.data)
    assert got.meta["tint_ratio"] == pytest.approx(0.4) and got.meta["warnings"] == []
    _drop_tint(sc.path / "capture" / "WHITEDARKREF_p.hdr")  # the white's exposure now unknown: said so
    (warning,) = calibrate(sc.path, drop_columns="none").meta["warnings"]
    assert "white reference records no integration time" in warning


def test_doubtful_references_are_warned_of_by_info_and_calibrate(hstool, tmp_path):
    """A dark frame at another exposure than the scene, and a 'white' that is the dark plus 3 DN:
    info says both before any work, calibrate says its reflectance reads far above 1."""
    sc = write_synthetic_capture(tmp_path / "raw", "s", 0, samples=32, lines=12, ref_lines=8, bad_columns=())
    capture = sc.path / "capture"
    (capture / "DARKREF_s.hdr").write_text((capture / "DARKREF_s.hdr").read_text().replace("tint = 40", "tint = 10"))
    dark = np.fromfile(capture / "DARKREF_s.raw", "<u2")
    (dark + 3).astype("<u2").tofile(capture / "WHITEREF_s.raw")
    r = hstool("info", sc.path, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["white_response_median_dn"] == pytest.approx(3.0) and report["white_not_above_dark_cells"] == 0
    assert [w.split(":")[0] for w in report["warnings"]] == [
        "dark reference was taken at 10 ms, the scene at 40 ms", "the white reference is barely above the dark (median 3.0 DN)"]
    r = hstool("calibrate", tmp_path / "raw", tmp_path / "out", "-f", "npz", "--json")
    assert r.exit_code == 0, r.output
    warnings = json.loads(r.stdout)["written"][0]["warnings"]
    assert len(warnings) == 2 and warnings[1].startswith("median reflectance is ") and "s: median reflectance" in r.stderr
    assert json.loads((tmp_path / "out" / "s.json").read_text())["warnings"] == warnings
    r = hstool("info", sc.path)
    assert "s: dark reference was taken at 10 ms" in " ".join(r.stderr.split())


def test_guarded_denominators_become_nan_and_are_counted(tmp_path, synth):
    dst = tmp_path / "scene"
    shutil.copytree(synth.path, dst)
    white = dst / "capture" / "WHITEREF_scene.raw"
    data = np.fromfile(white, dtype="<u2").reshape(-1, 204, 64)
    data[:, 100, 20] = 0  # white below dark: column 20, band 100 (690.64 nm)
    data[:, 150, 40] = 0
    data.tofile(white)
    native = calibrate(dst, drop_columns="none", bands=None)
    assert native.meta["guarded_cells"] == 2 and native.meta["nan_values"] == 2 * 48
    nan = np.isnan(native.data)
    assert nan[20, :, 100].all() and nan[40, :, 150].all() and nan.sum() == 2 * 48
    arad = calibrate(dst, drop_columns="none")
    # 690.64 nm only feeds the 690 nm target (687.65-690.64); band 150 (841 nm) is outside 400-700
    assert np.argwhere(np.isnan(arad.data))[:, [0, 2]].tolist() == [[20, 29]] * 48
    assert arad.meta["nan_values"] == 48


def test_saturated_values_are_counted_where_they_enter_the_output(tmp_path, hstool):
    """Raw values at the sensor's maximum are counted where they enter the output: kept
    columns only, every band without resampling, and with it only the bands the 400–700 nm
    grid interpolates from (not a band between two of them, nor one at 900 nm)."""
    from hstool.hsdata.specim import IQ_MAX_DN

    sc = write_synthetic_capture(tmp_path, "sat", 2, samples=40, lines=24, ref_lines=8)
    assert calibrate(sc.path).meta["saturated_values"] == 0
    wl = np.asarray(SpecimCapture.open(sc.path).wavelengths)
    m = resampling_matrix(wl, ARAD_WAVELENGTHS)
    read = np.flatnonzero(np.any(m != 0, axis=1))
    tapped = int(np.argmin(np.abs(wl - 550)))  # 550 nm is interpolated from its nearest band
    between = int(np.setdiff1d(np.arange(read[0], read[-1]), read)[0])  # inside the grid, unread
    infrared = int(np.argmin(np.abs(wl - 900)))
    assert challenge_columns(40) == [0, 39] and tapped in read
    raw = np.memmap(sc.path / "capture" / "sat.raw", dtype="<u2", mode="r+", shape=(24, 204, 40))
    raw[[0, 3, 23], tapped, [1, 17, 38]] = IQ_MAX_DN  # three that enter the output
    raw[5, tapped, 0] = IQ_MAX_DN  # a dropped column
    raw[6, between, 5] = IQ_MAX_DN
    raw[7, infrared, 5] = IQ_MAX_DN
    raw.flush()
    del raw
    assert calibrate(sc.path).meta["saturated_values"] == 3
    assert calibrate(sc.path, bands=None).meta["saturated_values"] == 5  # all but the dropped
    assert calibrate(sc.path, bands=None, drop_columns="none").meta["saturated_values"] == 6
    assert calibrate(sc.path, method="gaussian").meta["saturated_values"] == 4  # reads every band
    r = hstool("calibrate", tmp_path, tmp_path / "out")  # the table and a warning say so, not the sidecar alone
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if line.startswith("│ sat "))
    assert [cell.strip() for cell in row.split("│")][5:7] == ["0", "3"], row  # NaN values, saturated
    assert "1 capture(s) hold saturated raw values (sat)" in r.stderr


def test_white_below_dark_is_refused(tmp_path, synth):
    dst = tmp_path / "scene"
    shutil.copytree(synth.path, dst)
    cap = dst / "capture"
    for ext in (".raw",):
        (cap / f"WHITEREF_scene{ext}").rename(cap / "tmp")
        (cap / f"DARKREF_scene{ext}").rename(cap / f"WHITEREF_scene{ext}")
        (cap / "tmp").rename(cap / f"DARKREF_scene{ext}")
    with pytest.raises(HsError, match="references swapped"):
        calibrate(dst)


# -- CLI --------------------------------------------------------------------------------------
@pytest.fixture
def batch(tmp_path):
    raw = tmp_path / "raw"
    for i, name in enumerate(("a", "b", "c")):
        write_synthetic_capture(raw, name, i, samples=32, lines=12, ref_lines=8, bad_columns=(5,))
    return raw


def test_cli_batch_with_a_broken_capture(hstool, batch, tmp_path):
    (batch / "b" / "capture" / "DARKREF_b.hdr").unlink()
    (batch / "b" / "manifest.xml").unlink()
    out = tmp_path / "out"
    res = hstool("calibrate", batch, out, "--preview", "--drop-columns", "auto", "--workers", "2")
    assert res.exit_code == 1
    assert "DARKREF_b.hdr" in res.stderr and "1 of 3 failed" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.mat", "a_preview.png", "c.json", "c.mat", "c_preview.png"]
    with h5py.File(out / "a.mat", "r") as f:  # ARAD layout: MATLAB column-major cube, bands
        assert f["cube"].shape == (31, 12, 31) and f["bands"].shape == (31, 1)
    cube = read_cube(out / "a.mat")
    assert cube.shape == (31, 12, 31)  # 32 detector columns minus the detected bad one
    meta = json.loads((out / "a.json").read_text())
    assert meta["dropped_columns"] == [5] and meta["mode"] == "reflectance" and len(meta["wavelengths"]) == 31
    assert meta["tint_ms"] == 40.0 and meta["date"] == "2026-11-25"


def test_cli_skips_existing_outputs_unless_overwrite(hstool, batch, tmp_path):
    out = tmp_path / "out"
    assert hstool("calibrate", batch / "a", out, "--format", "npy").exit_code == 0
    before = (out / "a.npy").stat().st_mtime_ns
    res = hstool("calibrate", batch, out, "--format", "npy", "--json")
    assert res.exit_code == 0 and "skipped 1 capture(s) with existing outputs" in res.stderr
    report = json.loads(res.stdout)
    assert report["skipped"] == [str(out / "a.npy")] and len(report["written"]) == 2
    assert (out / "a.npy").stat().st_mtime_ns == before
    res = hstool("calibrate", batch / "a", out, "--format", "npy", "--overwrite")
    assert res.exit_code == 0 and (out / "a.npy").stat().st_mtime_ns != before
    # another format: the sidecars exist, so nothing is written for any capture (never half of one)
    res = hstool("calibrate", batch, out, "--format", "npz")
    assert res.exit_code == 1 and "skipped 3 capture(s)" in res.stderr and "3 job(s) incomplete" in res.stderr
    assert f"{out / 'a.json'} exists without {out / 'a.npz'}: kept as it is" in res.stderr  # says why
    assert not list(out.glob("*.npz"))


def test_cli_never_overwrites_a_capture_file(hstool, batch, tmp_path):
    """Output folder inside a capture: the ENVI cube would be the capture's own NAME.hdr/.raw."""
    capture = batch / "a" / "capture"
    before = {p.name: p.read_bytes() for p in capture.iterdir()}
    for extra in ((), ("--overwrite",)):
        res = hstool("calibrate", batch, capture, "--format", "envi", *extra)
        assert res.exit_code == 1 and "the output folder is inside the camera's folder" in res.stderr
        assert {p.name: p.read_bytes() for p in capture.iterdir()} == before  # nothing written at all
    # any folder of the camera's, whatever the names: its files would join the camera's
    for inner in (capture, batch / "a" / "results", batch / "a" / "metadata" / "x"):
        res = hstool("calibrate", batch / "a", inner, "--format", "mat")
        assert res.exit_code == 1 and "the output folder is inside the camera's folder" in res.stderr, inner
    assert {p.name: p.read_bytes() for p in capture.iterdir()} == before
    # the same through a capture/ folder that is a symbolic link
    linked = tmp_path / "linked" / "a"
    linked.mkdir(parents=True)
    (linked / "capture").symlink_to(capture)
    res = hstool("calibrate", linked, capture, "--format", "envi", "--overwrite")
    assert res.exit_code == 1 and "the output folder is inside the camera's folder" in res.stderr
    assert {p.name: p.read_bytes() for p in capture.iterdir()} == before


def test_cli_envi_radiance_and_bad_options(hstool, tmp_path):
    sc = write_synthetic_capture(tmp_path / "raw", "r", 0, samples=24, lines=6, ref_lines=4, bad_columns=(), gain=True)
    out = tmp_path / "out"
    res = hstool("calibrate", sc.path, out, "--to", "radiance", "--gain", sc.gain_path, "--format", "envi",
                 "--bands", "none", "--drop-columns", "none")
    assert res.exit_code == 0, res.stderr
    cube = read_cube(out / "r.hdr")
    assert cube.shape == (24, 6, 204)
    assert hstool("calibrate", sc.path, out, "--to", "albedo").exit_code == 1
    assert hstool("calibrate", sc.path, out, "--method", "cubic").exit_code == 1
    for args, message in ((("--fwhm", "inf", "--method", "gaussian"), "fwhm must be a positive number"),
                          (("--fwhm", "0", "--method", "gaussian"), "fwhm must be a positive number"),
                          (("--drop-columns", "10:5"), "START < STOP"),
                          (("--fwhm", "5"), "linear has none"),
                          (("--bands", "none", "--method", "gaussian"), "act with --bands"),
                          (("--gain", sc.gain_path), "a gain is used for radiance, not reflectance")):
        res = hstool("calibrate", sc.path, tmp_path / "none", *args)
        assert res.exit_code == 1 and message in res.stderr and not (tmp_path / "none").exists()


def test_cli_unwritable_output_writes_nothing(hstool, batch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = hstool("calibrate", batch, blocker)
    assert res.exit_code == 1 and "not a directory" in res.stderr
    assert blocker.read_text() == "not a folder"
    res = hstool("calibrate", batch, blocker / "sub")
    assert res.exit_code == 1 and not (blocker / "sub").exists()


def test_cli_names_captures_by_folder_and_skips_archive_debris(hstool, tmp_path, monkeypatch):
    """`calibrate .` names the capture by its folder; ENVI output beside the capture folder is not
    taken for one of its inputs; __MACOSX and hidden copies are not captures; a real clash names both."""
    raw = tmp_path / "raw"
    write_synthetic_capture(raw, "cap1", 0, samples=32, lines=12, ref_lines=8)
    r = hstool("calibrate", raw / "cap1", raw, "-f", "envi")  # raw/cap1.hdr + .raw next to raw/cap1/
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in raw.iterdir()) == ["cap1", "cap1.hdr", "cap1.json", "cap1.raw"]
    monkeypatch.chdir(raw / "cap1")
    r = hstool("calibrate", ".", tmp_path / "o1", "-f", "npy", "--json")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == ["cap1.json", "cap1.npy"]
    for extra in ((), ("--overwrite",)):  # an output folder of one's own inside the capture: rerun, redone
        r = hstool("calibrate", ".", "out", "-f", "npy", *extra)
        assert r.exit_code == 0, r.output
    assert "skipped 1 capture(s)" not in r.stderr and (raw / "cap1" / "out" / "cap1.npy").exists()
    monkeypatch.chdir(raw / "cap1" / "capture")
    r = hstool("calibrate", "..", tmp_path / "o2", "-f", "npy")
    assert r.exit_code == 0 and (tmp_path / "o2" / "cap1.npy").exists()
    monkeypatch.chdir(tmp_path)
    import shutil

    for debris in ("__MACOSX", ".Trashes"):
        shutil.copytree(raw / "cap1", raw / debris / "cap1")
    r = hstool("calibrate", raw, tmp_path / "o3", "-f", "npy", "--json")
    assert r.exit_code == 0, r.output
    assert [Path(w["capture"]).parent.name for w in json.loads(r.stdout)["written"]] == ["raw"]
    shutil.copytree(raw / "cap1", raw / "again" / "cap1")
    r = hstool("calibrate", raw, tmp_path / "o4", "-f", "npy")
    assert r.exit_code == 1 and f"{raw / 'again' / 'cap1'} and {raw / 'cap1'} share the name cap1" in r.stderr


def test_a_clipped_white_reference_is_counted_and_warned(hstool, tmp_path):
    """Bands where the white panel reached 4095 average too low: counted per kept (column, band)
    cell the output reads, and warned of; --json lists the dropped columns as the sidecar does."""
    sc = write_synthetic_capture(tmp_path / "raw", "s", 0, samples=32, lines=12, ref_lines=8, bad_columns=(5,))
    white = np.memmap(sc.path / "capture" / "WHITEREF_s.raw", "<u2", "r+", shape=(8, 204, 32))
    white[3, 60:80, :] = 4095  # one line of 20 bands, every column
    white.flush()
    del white
    r = hstool("calibrate", tmp_path / "raw", tmp_path / "out", "-f", "npz", "--bands", "none", "--drop-columns", "5",
               "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["written"][0]
    assert row["white_saturated_cells"] == 20 * 31 and row["dropped_columns"] == [5]  # 32 columns less the bad one
    assert "white reference the sensor clipped (s)" in r.stderr
    assert json.loads((tmp_path / "out" / "s.json").read_text())["white_saturated_cells"] == 20 * 31
    r = hstool("calibrate", tmp_path / "raw", tmp_path / "out31", "-f", "npy", "--drop-columns", "5", "--json")
    m = resampling_matrix(np.asarray(SpecimCapture.open(sc.path).wavelengths), ARAD_WAVELENGTHS)  # bands it reads
    assert json.loads(r.stdout)["written"][0]["white_saturated_cells"] == 31 * int(np.any(m[60:80] != 0, axis=1).sum())


def test_a_capture_name_with_dots_and_spaces(hstool, tmp_path):
    """The IQ names captures by number, but a renamed one ("v1.2 final") keeps its whole name."""
    write_synthetic_capture(tmp_path / "raw", "v1.2 final", 0, samples=32, lines=12, ref_lines=8)
    assert (tmp_path / "raw" / "v1.2 final" / "capture" / "v1.2 final.hdr").exists()
    r = hstool("calibrate", tmp_path / "raw", tmp_path / "out", "-f", "npz")
    assert r.exit_code == 0, r.output
    assert read_cube(tmp_path / "out" / "v1.2 final.npz").shape[2] == 31


def test_cli_method_takes_any_case(hstool, batch, tmp_path):
    r = hstool("calibrate", batch / "a", tmp_path / "o", "-f", "npz", "--method", "Gaussian", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o" / "a.json").read_text())["resampling"] == "gaussian"
