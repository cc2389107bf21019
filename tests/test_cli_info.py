"""``hstool info`` and the CLI's error contract: one line naming the file, exit 1, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from hstool.hsdata import ARAD_WAVELENGTHS, HsError, write_cube, write_rgb


def test_help_lists_every_command_on_one_line(hstool):
    from hstool.cli.main import COMMANDS

    result = hstool("--help")
    assert result.exit_code == 0 and "--debug" in result.output
    lines = result.output.splitlines()
    for name, summary in COMMANDS.items():
        row = [line for line in lines if line.startswith(f"│ {name} ")]
        assert len(row) == 1 and summary in row[0], (name, row)  # not wrapped
        assert hstool(name, "--help").exit_code == 0


def test_info_json_fields_for_each_cube_format(hstool, tmp_path, tmp_cube):
    cube = tmp_cube(norm_factor=4095.0)
    data = cube.data.copy()
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf, -np.inf
    cube = cube.with_data(data)
    finite = data[np.isfinite(data)].astype(np.float64)
    paths = []
    for name, opts in [("c.mat", {}), ("c5.mat", {"version": "5"}), ("c.hdr", {}), ("c.npy", {}), ("c.npz", {})]:
        paths += write_cube(cube, tmp_path / name, **opts)[:1]
    result = hstool("info", "--json", *paths)
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert [r["format"] for r in reports] == ["mat v7.3", "mat v5", "envi", "npy", "npz"]
    for r in reports:
        assert r["shape"] == [24, 32, 31] and r["dtype"] == "float32", r["path"]
        assert (r["wavelength_min"], r["wavelength_max"], r["wavelength_step"]) == (400.0, 700.0, 10.0)
        assert r["uniform_grid"] and r["wavelength_step_range"] == [10.0, 10.0]
        assert r["nan_count"] == 1 and r["inf_count"] == 2
        assert r["min"] == pytest.approx(finite.min()) and r["max"] == pytest.approx(finite.max())
        assert r["mean"] == pytest.approx(finite.mean(), rel=1e-9)
    assert reports[0]["meta"]["norm_factor"] == 4095.0
    assert reports[2]["units"] == "reflectance" and reports[2]["meta"]["interleave"] == "bsq"


def test_info_table_and_images(hstool, tmp_path, tmp_cube):
    write_cube(tmp_cube(wavelengths=np.arange(400.0, 1001.0, 20.0)), tmp_path / "vnir.hdr")
    rgb16 = np.full((5, 6, 3), 65535, np.uint16)
    rgb16[0, 0] = 0
    write_rgb(tmp_path / "a.png", rgb16)
    write_rgb(tmp_path / "b.jpg", np.full((5, 6, 3), 200, np.uint8))
    result = hstool("info", tmp_path / "vnir.hdr", tmp_path / "a.png", tmp_path / "b.jpg")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("vnir.hdr", "envi", "24x32x31", "400.0000", "1000.0000", "20.0000", "reflectance", "a.png"):
        assert text in out, text
    reports = json.loads(hstool("info", "--json", tmp_path / "a.png", tmp_path / "b.jpg").stdout)
    assert reports[0]["bit_depth"] == 16 and reports[0]["dtype"] == "uint16"
    assert (reports[0]["min"], reports[0]["max"]) == (0.0, 1.0)
    assert reports[1]["bit_depth"] == 8 and reports[1]["shape"] == [5, 6, 3]


def test_info_force_format(hstool, tmp_path, tmp_cube):
    write_cube(tmp_cube(), tmp_path / "c.npy")
    (tmp_path / "c.npy").rename(tmp_path / "c.bin")
    result = hstool("info", "--json", "--format", "npy", tmp_path / "c.bin")
    assert result.exit_code == 0 and json.loads(result.stdout)["shape"] == [24, 32, 31]


def bad_inputs(folder):
    """A missing file, a corrupt .mat, an ENVI header whose binary is too short, a .mat without
    `cube`, an unknown interleave and a text file named .png."""
    (folder / "corrupt.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" + bytes(range(256)) * 2)
    (folder / "short.hdr").write_text(
        "ENVI\nsamples = 4\nlines = 3\nbands = 2\ndata type = 4\ninterleave = bil\nbyte order = 0\n"
        "wavelength = {500, 600}\n"
    )
    (folder / "short.raw").write_bytes(b"\0" * (4 * 3 * 2 * 4 - 4))
    (folder / "weird.hdr").write_text((folder / "short.hdr").read_text().replace("bil", "xyz"))
    (folder / "weird.raw").write_bytes(b"\0" * (4 * 3 * 2 * 4))
    with h5py.File(folder / "nocube.mat", "w") as f:
        f["bands"] = ARAD_WAVELENGTHS
    (folder / "text.png").write_text("this is not an image\n")
    np.save(folder / "complex.npy", np.ones((2, 2, 31), np.complex64))
    with h5py.File(folder / "nanbands.mat", "w") as f:
        f["cube"] = np.ones((31, 2, 2), np.float32)
        f["bands"] = np.full(31, np.nan)
    return {
        "complex.npy": "complex values",
        "nanbands.mat": "wavelengths must be finite",
        "missing.mat": "no such file",
        "corrupt.mat": "not a readable MATLAB",
        "short.hdr": "truncated",
        "weird.hdr": "interleave",
        "nocube.mat": "no 'cube'",
        "text.png": "not a readable image",
    }


def test_bad_inputs_give_one_line_and_exit_1(hstool, tmp_path):
    for name, problem in bad_inputs(tmp_path).items():
        result = hstool("info", tmp_path / name)
        assert result.exit_code == 1, (name, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, (name, result.output)
        assert name.split(".")[0] in lines[0] and problem in lines[0], (name, lines[0])
        assert lines[0].startswith("error:") and "Traceback" not in result.output
        assert result.stdout == ""


def test_one_bad_file_does_not_hide_the_others(hstool, tmp_path, tmp_cube):
    write_cube(tmp_cube(), tmp_path / "good.npy")
    (tmp_path / "text.png").write_text("no")
    result = hstool("info", "--json", tmp_path / "text.png", tmp_path / "good.npy")
    assert result.exit_code == 1
    assert "text.png" in result.stderr and "Traceback" not in result.output
    bad, good = json.loads(result.stdout)  # every file listed, in order: the bad one with its error
    assert bad["path"] == str(tmp_path / "text.png") and "text.png" in bad["error"] and set(bad) == {"path", "error"}
    assert good["path"] == str(tmp_path / "good.npy") and good["shape"] == [24, 32, 31] and "error" not in good
    # a folder stands for its files (the bad one reported, the good one described)
    result = hstool("info", "--json", tmp_path)
    assert result.exit_code == 1 and "text.png" in result.stderr
    assert [(r["path"], "error" in r) for r in json.loads(result.stdout)] == [
        (str(tmp_path / "good.npy"), False), (str(tmp_path / "text.png"), True)]


def test_specim_headers_are_read_without_warnings(tmp_path):
    """SPy's warning about the IQ's mixed-case header keys is not shown to users."""
    import warnings

    from hstool.hsdata.describe import describe
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    sc = write_synthetic_capture(tmp_path, "iq", 0, samples=16, lines=8, ref_lines=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = describe(sc.path / "capture" / "iq.hdr")
    assert report["shape"] == [8, 16, 204]  # lines x samples x bands
    # the IQ's grid steps from 2.9 to 3.1 nm: not uniform (a 0.2 nm spread is no header rounding)
    lo, hi = report["wavelength_step_range"]
    assert not report["uniform_grid"] and 2.8 < lo < report["wavelength_step"] < hi < 3.1


def test_debug_shows_the_traceback(hstool, tmp_path):
    scipy.io.savemat(tmp_path / "nocube.mat", {"rad": np.ones((2, 2, 31))})
    result = hstool("--debug", "info", tmp_path / "nocube.mat")
    assert result.exit_code != 0 and isinstance(result.exception, HsError)
    # and for real: a subprocess prints Python's traceback only with --debug
    code = "import sys; from hstool.cli.main import run; sys.argv[0] = 'hstool'; run()"
    env = {**os.environ, "HSTOOL_DEBUG": ""}
    for flags, shown in ([], False), (["--debug"], True):
        proc = subprocess.run(
            [sys.executable, "-c", code, *flags, "info", str(tmp_path / "nocube.mat")],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )
        assert proc.returncode == 1
        assert ("Traceback" in proc.stderr) is shown
        assert "nocube.mat" in proc.stderr and "no 'cube'" in proc.stderr


@pytest.mark.parametrize(
    "exc",
    [ValueError("first line\nsecond line"), FileNotFoundError(2, "No such file or directory", "x.raw"), MemoryError()],
)
def test_guard_turns_other_library_errors_into_one_line(runner, exc):
    import typer

    from hstool.cli.main import DEBUG, guarded

    def failing() -> None:
        raise exc

    app = typer.Typer()
    app.command()(guarded(failing))
    DEBUG["on"] = False
    result = runner.invoke(app, [])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > len("error: ") + 5
    if isinstance(exc, OSError):
        assert "x.raw" in lines[0]


def test_usage_errors_are_one_line_from_the_console_script(tmp_path):
    """click's boxed usage text is replaced by one line and exit code 2 (help still prints)."""
    code = "import sys; from hstool.cli.main import run; sys.argv[0] = 'hstool'; run()"
    (tmp_path / "f").write_text("x")
    for args, message in ((["recon", "img.png", "-o", str(tmp_path / "f")], "hstool recon: Invalid value for '--out'"),
                          (["simulate", "a", "b", "--seed", "-1"], "hstool simulate: Invalid value for '--seed'"),
                          (["nosuchcommand"], "No such command 'nosuchcommand'")):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    proc = subprocess.run([sys.executable, "-c", code, "score", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and "Usage" in proc.stdout
    bare = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert "Usage" in bare.stdout + bare.stderr and "error:" not in bare.stderr  # the help, no empty error


def test_a_missing_file_and_a_file_without_a_numpy_header_say_so(hstool, tmp_path):
    r = hstool("info", tmp_path / "nonexist")
    assert r.exit_code == 1 and "nonexist: no such file" in r.output
    (tmp_path / "t.npy").write_text("hello\n")
    r = hstool("info", tmp_path / "t.npy")
    assert r.exit_code == 1 and "t.npy: not a NumPy file (no .npy/.npz header)" in r.output
    assert "pickle" not in r.output  # numpy's advice to load it unsafely is not passed on


def test_malformed_files_are_one_line_errors_and_the_others_are_still_read(hstool, tmp_path, tmp_cube):
    """Whatever a parser raises on a malformed file is that file's error, named; a forced format
    is the one read; a .npy/.npz whose contents contradict its name says so."""
    import scipy.io

    scipy.io.savemat(tmp_path / "cell.mat", {"cube": np.zeros((3, 4, 31)), "bands": np.array(["a"], dtype=object)})
    np.savez(tmp_path / "meta.npz", cube=np.ones((3, 4, 31), np.float32), meta="[1, 2]")
    np.savez(tmp_path / "archive.npz", cube=np.ones((3, 4, 31), np.float32))
    (tmp_path / "archive_named.npy").write_bytes((tmp_path / "archive.npz").read_bytes())
    write_cube(tmp_cube(), tmp_path / "plain.npy")
    (tmp_path / "plain_named.npz").write_bytes((tmp_path / "plain.npy").read_bytes())
    bad = {"cell.mat": "not a readable mat cube", "meta.npz": "npz 'meta' is not a JSON object",
           "archive_named.npy": "holds an archive of arrays (.npz), not a .npy array",
           "plain_named.npz": "holds a single array (.npy), not an .npz archive"}
    r = hstool("info", *(tmp_path / n for n in [*bad, "archive.npz"]), "--json")
    assert r.exit_code == 1 and "Traceback" not in r.output
    reports = {Path(x["path"]).name: x for x in json.loads(r.stdout)}
    for name, problem in bad.items():
        assert problem in reports[name]["error"] and f"{tmp_path / name}: " in r.stderr, name
    assert reports["archive.npz"]["shape"] == [3, 4, 31]
    (tmp_path / "cube.bin").write_bytes((tmp_path / "archive.npz").read_bytes())
    for flag in ("--format", "--in-format", "-f"):  # --in-format as convert, render, simulate spell it
        r = hstool("info", tmp_path / "cube.bin", flag, "npz", "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["format"] == "npz"
    r = hstool("info", tmp_path / "archive.npz", "--format", "npy")
    assert r.exit_code == 1 and "not a .npy array as its name or --format says" in r.stderr


def test_info_describes_a_specim_capture_folder_before_calibration(hstool, tmp_path):
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    sc = write_synthetic_capture(tmp_path / "raw", "cap", 0, samples=48, lines=12, ref_lines=8,
                                 bad_columns=(7, 30))
    white = np.memmap(sc.path / "capture" / "WHITEREF_cap.raw", "<u2", "r+", shape=(8, 204, 48))
    white[2, 100:103, :] = 4095
    white.flush()
    del white
    r = hstool("info", sc.path, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["format"] == "Specim IQ capture" and report["capture"] == "cap"
    assert report["sensor_shape"] == [12, 48, 204] and report["upright_shape"] == [48, 12, 204]
    assert report["tint_ms"] == 40.0 and report["reference_lines"] == {"dark": 8, "white": 8}
    assert report["suspect_columns"] == [7, 30]  # what calibrate --drop-columns auto drops
    assert report["white_saturated_cells_all"] == 3 * 48
    raw = np.fromfile(sc.path / "capture" / "cap.raw", "<u2")
    assert report["scene_saturated_values"] == int(np.count_nonzero(raw >= 4095))
    r = hstool("info", tmp_path / "raw")  # a folder of captures: each described
    assert r.exit_code == 0 and "Specim IQ capture" in r.stdout and "48x12x204" in r.stdout


def test_info_on_a_glob_sets_the_sidecars_aside_and_describes_cube_and_preview(hstool, tmp_path, tmp_cube):
    """``hstool info cal/*`` names each cube, its JSON sidecar and its preview: the sidecars are set
    aside with one note (the cube's record shows with the cube), as the batches do; a sidecar named
    on its own is refused as an unknown type."""
    write_rgb(tmp_path / "scene_preview.png", np.full((8, 10, 3), 128, np.uint8))
    write_cube(tmp_cube(), tmp_path / "scene.mat")
    (tmp_path / "scene.json").write_text(json.dumps({"units": "reflectance"}))
    r = hstool("info", *sorted(tmp_path.iterdir()), "--json")
    assert r.exit_code == 0, r.stderr
    assert [Path(x["path"]).name for x in json.loads(r.stdout)] == ["scene.mat", "scene_preview.png"]
    assert "set aside 1 JSON sidecar(s)" in r.stderr and "scene.json" in r.stderr
    alone = hstool("info", tmp_path / "scene.json")
    assert alone.exit_code == 1 and "unknown file type '.json'" in alone.stderr
