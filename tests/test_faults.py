"""Faults (issue 30): bombs, kills, two runs on one folder, a full disk and odd folders never lose
data or crash. One test (or a few) per class of fault."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from conftest import make_cube

from hstool.hsdata import ARAD_WAVELENGTHS, HsError, read_cube, write_cube

# -- 9: float64 values beyond float32's range ----------------------------------------------------

def _envi_float64(path, data):
    """An ENVI cube stored as float64 (data type 5), BSQ, written by hand."""
    h, w, b = data.shape
    path.with_suffix(".raw").write_bytes(np.ascontiguousarray(data.transpose(2, 0, 1), "<f8").tobytes())
    path.write_text(f"ENVI\nsamples = {w}\nlines = {h}\nbands = {b}\nheader offset = 0\nfile type = ENVI Standard\n"
                    f"data type = 5\ninterleave = bsq\nbyte order = 0\n"
                    f"wavelength = {{{', '.join(map(str, ARAD_WAVELENGTHS[:b]))}}}\n")


@pytest.mark.parametrize("fmt", ["envi", "npy", "mat"])
def test_float64_beyond_float32_is_refused_in_one_line_not_read_as_inf(hstool, tmp_path, fmt):
    data = make_cube(6, 5, dtype=np.float64).data
    data[2, 3, 4] = 1e300
    if fmt == "envi":
        src = tmp_path / "big.hdr"
        _envi_float64(src, data)
    elif fmt == "npy":
        src = tmp_path / "big.npy"
        np.save(src, data)
    else:
        import scipy.io
        src = tmp_path / "big.mat"
        scipy.io.savemat(src, {"cube": data, "bands": ARAD_WAVELENGTHS})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        with pytest.raises(HsError, match=r"1e\+300 do not fit float32"):
            read_cube(src)
    assert read_cube(src, dtype=np.float64).data[2, 3, 4] == 1e300  # kept as stored when asked
    r = hstool("convert", src, tmp_path / "out")
    assert r.exit_code == 1 and "do not fit float32" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # values float32 holds, infinities included, read as before
    data[2, 3, 4] = np.inf
    np.save(tmp_path / "inf.npy", data)
    assert np.isinf(read_cube(tmp_path / "inf.npy").data[2, 3, 4])


# -- 8: error lines stay short and never advise unsafe loading -------------------------------------

def test_resume_of_a_hostile_checkpoint_is_one_short_line_without_unsafe_advice(hstool, tmp_path):
    import torch
    from test_train import TINY

    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.ckpt"
    torch.save({"model_name": "_tiny_test", "payload": Hostile()}, evil)
    r = hstool("train", *TINY, "--epochs", "1", "--out", tmp_path / "w.safetensors", "--resume", evil)
    assert r.exit_code == 1 and not marker.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 300, lines
    assert "evil.ckpt" in lines[0] and "never loads" in lines[0] and "posix.system" in lines[0] and "weights_only" not in r.output


def test_another_librarys_long_message_is_cut_in_a_batchs_error_line(hstool, tmp_path, monkeypatch):
    from hstool.cli import info as info_cli

    for i in range(2):
        write_cube(make_cube(4, 5, seed=i), tmp_path / f"c{i}.npy")

    def failing(path, format=None):  # a decoder's paragraph of advice
        raise RuntimeError("decoder failed. " + "Try this, or that, or set an unsafe flag. " * 30 + "Reason: bad block")

    monkeypatch.setattr(info_cli, "describe", failing)
    r = hstool("info", tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 2
    for line, name in zip(lines, ("c0.npy", "c1.npy")):
        assert line.startswith(f"error: {tmp_path / name}: RuntimeError: decoder failed.")
        assert line.endswith("Reason: bad block") and len(line) - len(str(tmp_path / name)) < 300


# -- 2 (and issue 31): info and every batch carry on past any file's failure -----------------------

def test_info_describes_a_capture_beside_a_stray_file(hstool, tmp_path):
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    raw = tmp_path / "raw"
    write_synthetic_capture(raw / "scene", samples=8, lines=8, ref_lines=4)
    np.save(raw / "truth.npy", np.zeros((4, 4)))
    r = hstool("info", raw)
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: " + str(raw / "truth.npy") + ": expected a numeric (H, W, B) array, got float64 (4, 4)"]
    assert "Specim IQ capture" in r.output and "sensor_shape" in r.output  # the capture is described


def test_info_names_the_file_of_any_failure_and_describes_the_others(hstool, tmp_path, monkeypatch):
    from hstool.cli import info as info_cli

    for i in range(3):
        write_cube(make_cube(4, 5, seed=i), tmp_path / f"c{i}.npy")
    real = info_cli.describe

    def failing(path, format=None):  # a file that runs the machine out of memory, as a decoder may
        if path.name == "c1.npy":
            raise MemoryError("Unable to allocate 20.1 GiB for an array")
        return real(path, format)

    monkeypatch.setattr(info_cli, "describe", failing)
    r = hstool("info", tmp_path, "--json")
    assert r.exit_code == 1 and "Traceback" not in r.output
    import json
    reports = json.loads(r.stdout)
    assert [("error" in x) for x in reports] == [False, True, False]
    assert reports[1]["error"].startswith(str(tmp_path / "c1.npy")) and "MemoryError" in reports[1]["error"]


# -- 1: image decompression bombs ------------------------------------------------------------------

def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(path, width=60000, height=60000):
    """A PNG of a few dozen bytes whose header declares ``width`` x ``height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + _chunk(b"IEND", b""))
    return path


def jpeg_bomb(path, width=30000, height=30000):
    """A 16x16-pixel JPEG whose frame header (SOF0) says ``width`` x ``height``."""
    import cv2

    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def test_image_bombs_are_refused_from_their_header_in_one_line(hstool, tmp_path):
    import resource
    import time

    from hstool.hsdata import read_rgb, write_rgb

    folder = tmp_path / "imgs"
    folder.mkdir()
    bombs = [png_bomb(folder / "a_bomb.png"), jpeg_bomb(folder / "b_bomb.jpg")]
    write_rgb(folder / "c_good.png", (make_cube(16, 16).data[..., [25, 15, 5]] * 255).astype(np.uint8))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for bomb in bombs:
        with pytest.raises(HsError, match=r"declares (60000x60000|30000x30000) pixels, over the limit"):
            read_rgb(bomb)
    assert time.perf_counter() - t0 < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000  # kB: nothing decoded
    r = hstool("info", folder)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert sum("over the limit" in line for line in r.stderr.splitlines()) == 2 and "c_good.png" in r.output
    r = hstool("recon", folder, "--model", "linear", "--out", tmp_path / "out", "--format", "npy")
    assert r.exit_code == 1 and "2 of 3 failed" in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c_good.json", "c_good.npy"]


def test_the_pixel_limit_is_set_by_the_environment(tmp_path, monkeypatch):
    from hstool.hsdata import read_rgb, write_rgb

    png = write_rgb(tmp_path / "x.png", np.zeros((16, 20, 3), np.uint8))
    assert read_rgb(png).shape == (16, 20, 3)
    monkeypatch.setenv("HSTOOL_MAX_PIXELS", "319")
    with pytest.raises(HsError, match="20x16 pixels, over the limit of 319"):
        read_rgb(png)
    monkeypatch.setenv("HSTOOL_MAX_PIXELS", "320")
    assert read_rgb(png).shape == (16, 20, 3)


# -- 7: symlink loops and dangling links -----------------------------------------------------------

def test_looping_and_dangling_links_in_an_input_folder_are_skipped_with_a_note(hstool, tmp_path):
    from hstool.hsdata import write_rgb

    cubes, imgs = tmp_path / "cubes", tmp_path / "imgs"
    cubes.mkdir(), imgs.mkdir()
    for i in range(2):
        write_cube(make_cube(8, 8, seed=i), cubes / f"c{i}.mat")
    write_rgb(imgs / "p.png", (make_cube(8, 8).data[..., [25, 15, 5]] * 255).astype(np.uint8))
    for folder, ext in ((cubes, ".mat"), (imgs, ".png")):
        (folder / f"loop{ext}").symlink_to(f"loop{ext}")
        (folder / f"gone{ext}").symlink_to(f"nothing{ext}")
        (folder / "up").symlink_to("..")
    r = hstool("convert", cubes, tmp_path / "npy", "--format", "npy")
    assert r.exit_code == 0, r.output
    assert "skipped 2 looping or dangling link(s): gone.mat, loop.mat" in r.stderr
    assert sorted(p.name for p in (tmp_path / "npy").iterdir()) == ["c0.npy", "c1.npy"]
    r = hstool("simulate", cubes, tmp_path / "rgb", "--track", "clean")
    assert r.exit_code == 0 and "skipped 2 looping" in r.stderr, r.output
    r = hstool("recon", imgs, "--model", "linear", "--out", tmp_path / "rec", "--format", "npy")
    assert r.exit_code == 0 and "skipped 2 looping" in r.stderr, r.output
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["p.json", "p.npy"]
    r = hstool("info", cubes)
    assert r.exit_code == 0 and "skipped 2 looping" in r.stderr


def test_calibrate_never_walks_a_link_back_into_its_own_capture(hstool, tmp_path):
    from hstool.hsdata.specim import capture_files
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    raw = tmp_path / "raw"
    write_synthetic_capture(raw / "s", samples=8, lines=8, ref_lines=4)
    capture = raw / "s" / "synthetic"
    plain = sorted(capture_files(capture))
    for i, target in enumerate(["..", "..", "../..", "."]):  # four loops: 2^40 paths through os.walk
        (capture / "capture" / f"up{i}").symlink_to(target)
    (capture / "metadata" / "gone").symlink_to("nothing")
    (capture / "metadata" / "loop").symlink_to("loop")
    assert sorted(capture_files(capture)) == plain
    r = hstool("calibrate", raw, tmp_path / "cal")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cal" / "synthetic.mat").is_file()


# -- 4: a kill between a job's files: the rerun redoes hstool's own half job ------------------------

#: runs hstool in this process, killing it (SIGKILL) as it starts the output ending in argv[1]:
#: after the job's earlier files were renamed into place, before that one
KILLED_BETWEEN = """
import os, signal, sys
import hstool.{module} as command
real, last = command.atomic_path, sys.argv[1]
def atomic_path(path, *args, **kwargs):
    if str(path).endswith(last):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, *args, **kwargs)
command.atomic_path = atomic_path
from hstool.cli.main import run
sys.argv = ["hstool", *sys.argv[2:]]
run()
"""


def _killed_between(module: str, last: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KILLED_BETWEEN.format(module=module), last, *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_run_killed_between_a_captures_files_is_redone_by_the_next(hstool, tmp_path):
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    raw = tmp_path / "raw"
    write_synthetic_capture(raw / "s", samples=8, lines=8, ref_lines=4)
    killed = _killed_between("hsdata.provenance", ".json", "calibrate", raw, tmp_path / "cal")  # its sidecar writer
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / "cal" / "synthetic.mat").is_file() and not (tmp_path / "cal" / "synthetic.json").exists()
    r = hstool("calibrate", raw, tmp_path / "cal")
    assert r.exit_code == 0 and "incomplete" not in r.output, r.output
    r = hstool("calibrate", raw, tmp_path / "straight")
    assert r.exit_code == 0
    for name in ("synthetic.mat", "synthetic.json"):
        assert (tmp_path / "cal" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "cal").iterdir()) == ["synthetic.json", "synthetic.mat"]


def test_a_simulate_killed_between_cube_and_image_is_redone_and_others_files_are_not(hstool, tmp_path):
    cubes = tmp_path / "cubes"
    write_cube(make_cube(8, 8), cubes / "a.mat")
    killed = _killed_between("cli.simulate", ".png", "simulate", cubes, tmp_path / "c", "--brightness", "0.5")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert left == [".a_clean.png.hstool-job", "a_clean.mat"]  # the cube, and the mark of the job it belongs to
    r = hstool("simulate", cubes, tmp_path / "c", "--brightness", "0.5")
    assert r.exit_code == 0 and "incomplete" not in r.output, r.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["a_clean.mat", "a_clean.png"]
    hstool("simulate", cubes, tmp_path / "straight", "--brightness", "0.5")
    for name in ("a_clean.mat", "a_clean.png"):
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes()
    # a half job with no mark of hstool's (a file of the user's) is kept and reported, as before
    (tmp_path / "c" / "a_clean.png").unlink()
    r = hstool("simulate", cubes, tmp_path / "c", "--brightness", "0.5")
    assert r.exit_code == 1 and "1 job(s) incomplete" in r.stderr and (tmp_path / "c" / "a_clean.mat").is_file()


# -- 3: two runs on one output folder ----------------------------------------------------------------

def test_two_runs_on_one_folder_never_lose_a_file_either_listed_as_written(tmp_path):
    cubes, out = tmp_path / "cubes", tmp_path / "C"
    for i in range(16):
        write_cube(make_cube(8, 8, seed=i), cubes / f"s{i:02d}.mat")
    run = [sys.executable, "-m", "hstool.cli", "simulate", str(cubes), str(out), "--brightness", "0.5", "--json"]
    runs = [subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    reports = []
    for p in runs:
        stdout, stderr = p.communicate(timeout=300)
        assert "Traceback" not in stderr
        reports.append(json.loads(stdout))
    written = [f for rep in reports for row in rep["written"] for f in (row["output"], row["cube"])]
    assert all(os.path.isfile(f) for f in written)  # nothing listed as written is gone
    for i in range(16):  # every job complete, in one run's list (or finished by the other meanwhile)
        assert (out / f"s{i:02d}_clean.png").is_file() and read_cube(out / f"s{i:02d}_clean.mat").shape == (8, 8, 31)
        assert any(f.endswith(f"s{i:02d}_clean.png") for f in written) or any(
            f"s{i:02d}" in str(x) for rep in reports for x in rep["failed"] + rep["skipped"] + rep["incomplete"])
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no marker, no temporary left


def test_a_job_another_live_run_holds_is_left_to_it_and_its_files_kept(hstool, tmp_path):
    from hstool.hsdata.atomic import job_marker

    cubes, out = tmp_path / "cubes", tmp_path / "C"
    write_cube(make_cube(8, 8), cubes / "a.mat")
    out.mkdir()
    theirs = write_cube(make_cube(8, 8, seed=5), out / "a_clean.mat")[0].read_bytes()  # its first file, written
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job_marker(out / "a_clean.png").write_text(json.dumps(
            {"pid": other.pid, "host": socket.gethostname(), "outputs": ["a_clean.png", "a_clean.mat"]}))
        r = hstool("simulate", cubes, out, "--brightness", "0.5", "--overwrite")
        assert r.exit_code == 1 and f"another hstool run (pid {other.pid}) is writing" in r.stderr
        assert (out / "a_clean.mat").read_bytes() == theirs and not (out / "a_clean.png").exists()
        r = hstool("simulate", cubes, out, "--brightness", "0.5")  # planned: held back, not redone
        assert r.exit_code == 1 and "incomplete" in r.stderr and (out / "a_clean.mat").read_bytes() == theirs
    finally:
        other.kill()
        other.wait()
    r = hstool("simulate", cubes, out, "--brightness", "0.5")  # that run is gone: its half job is redone
    assert r.exit_code == 0 and (out / "a_clean.png").is_file() and (out / "a_clean.mat").read_bytes() != theirs


# -- 6: output folder = input folder: hstool's outputs are no inputs of the rerun --------------------

def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


def test_rerun_into_the_input_folder_skips_what_the_first_run_wrote(hstool, tmp_path):
    from hstool.hsdata import write_rgb
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    d = tmp_path / "D"
    for i in range(2):
        write_rgb(d / f"p{i}.png", (make_cube(8, 8, seed=i).data[..., [25, 15, 5]] * 255).astype(np.uint8))
    assert hstool("recon", d, "--model", "linear", "--out", d, "--preview").exit_code == 0
    assert sorted(_mtimes(d)) == ["p0.json", "p0.mat", "p0.png", "p0_preview.png",
                                  "p1.json", "p1.mat", "p1.png", "p1_preview.png"]
    before = _mtimes(d)
    r = hstool("recon", d, "--model", "linear", "--out", d, "--preview")
    assert r.exit_code == 0 and "skipped 2 image(s) with existing outputs" in r.stderr, r.output
    assert _mtimes(d) == before

    write_synthetic_capture(tmp_path / "raw", name="C", samples=8, lines=8, ref_lines=4)
    cap = tmp_path / "raw" / "C"
    assert hstool("calibrate", cap, cap, "--preview").exit_code == 0
    before = _mtimes(cap)
    r = hstool("calibrate", cap, cap, "--preview")
    assert r.exit_code == 0 and "skipped 1 capture(s)" in r.stderr, r.output
    assert _mtimes(cap) == before and {"C.mat", "C.json", "C_preview.png"} <= set(before)
    # the camera's own files at a capture's top stay inputs: its thumbnail (NAME.png) is never replaced
    (cap / "C.png").write_bytes(b"\x89PNG the camera's thumbnail")
    r = hstool("calibrate", cap, cap, "--preview", "--overwrite")
    assert r.exit_code == 0 and (cap / "C.png").read_bytes() == b"\x89PNG the camera's thumbnail", r.output

    e = tmp_path / "E"
    write_cube(make_cube(8, 8), e / "c.mat")
    assert hstool("convert", e, e, "--format", "npy").exit_code == 0
    before = _mtimes(e)
    r = hstool("convert", e, e, "--format", "npy")
    assert r.exit_code == 0 and "left out 1 cube(s) already in the output folder" in r.stderr, r.output
    assert _mtimes(e) == before


# -- 5: a full disk ------------------------------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path):
    """A 2 MB tmpfs mounted in ``tmp_path`` (skipped, saying why, where mounting is impossible)."""
    folder = tmp_path / "FULL"
    folder.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs for a full disk: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for a full disk: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("fmt", ["mat", "mat5", "npy", "npz", "envi"])
def test_a_full_disk_is_one_line_per_file_and_nothing_partial(hstool, tmp_path, full_disk, fmt):
    from hstool.hsdata import output_files

    src = tmp_path / "cubes"
    for i in range(3):  # 1.2 MB each: the first fits in 2 MB, the others do not
        write_cube(make_cube(100, 100, seed=i), src / f"c{i}.npy")
    r = hstool("convert", src, full_disk, "--format", fmt)  # a crash (h5py: segfault) ends the test run
    assert r.exit_code == 1 and "Traceback" not in r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("No space left on device" in line for line in errors), errors
    suffix = {"mat5": ".mat", "envi": ".hdr"}.get(fmt, "." + fmt)
    assert sorted(p.name for p in full_disk.iterdir()) == sorted(p.name for p in output_files(
        full_disk / f"c0{suffix}", "mat" if fmt == "mat5" else fmt))  # no temporary, marker or partial file
    np.testing.assert_array_equal(read_cube(full_disk / f"c0{suffix}").data, read_cube(src / "c0.npy").data)


def test_a_full_disk_under_recon_and_simulate(hstool, tmp_path, full_disk):
    from hstool.hsdata import write_rgb

    imgs = tmp_path / "imgs"
    for i in range(3):
        write_rgb(imgs / f"i{i}.png", (np.random.default_rng(i).random((100, 100, 3)) * 255).astype(np.uint8))
    r = hstool("recon", imgs, "--model", "linear", "--out", full_disk, "--preview")
    assert r.exit_code == 1 and r.stderr.count("No space left on device") == 2 and "Traceback" not in r.output
    assert sorted(p.name for p in full_disk.iterdir()) == ["i0.json", "i0.mat", "i0_preview.png"]
    for p in full_disk.iterdir():
        p.unlink()
    cubes = tmp_path / "cubes"
    for i in range(3):
        write_cube(make_cube(100, 100, seed=i), cubes / f"c{i}.npy")
    r = hstool("simulate", cubes, full_disk, "--brightness", "0.5")
    assert r.exit_code == 1 and r.stderr.count("No space left on device") == 2 and "Traceback" not in r.output
    assert sorted(p.name for p in full_disk.iterdir()) == ["c0_clean.mat", "c0_clean.png"]
