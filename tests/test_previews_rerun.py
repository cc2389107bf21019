"""A rerun with --preview over a finished batch renders the missing previews from the cubes it
wrote, without redoing the work: the same previews a single run with --preview writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hstool.camera import simulate_to_file
from hstool.hsdata import Cube, read_cube, read_rgb, write_cube
from hstool.hsdata.specim_synthetic import write_synthetic_capture


def _recon(tmp_path, tmp_cube):
    png = simulate_to_file(tmp_cube(12, 16), tmp_path / "in" / "ARAD_HS_0001_clean.png", "clean", rng=0)
    return lambda out: [png, "--model", "linear", "--format", "npy", "--out", out], "ARAD_HS_0001.npy", \
        "ARAD_HS_0001_preview.png"


def _convert(tmp_path, tmp_cube):
    # a reflectance cube into .npy, which keeps no units: its preview takes the source's, as in one run
    write_cube(tmp_cube(12, 16, seed=3), tmp_path / "in" / "scene.npz")
    return lambda out: [tmp_path / "in" / "scene.npz", out, "--format", "npy"], "scene.npy", "scene_preview.png"


def _synth(tmp_path, tmp_cube):
    return lambda out: [out, "--n", "1", "--size", "16x20", "--format", "npy"], "SYNTH_train_0000.npy", \
        "SYNTH_train_0000_preview.png"


def _calibrate(tmp_path, tmp_cube):
    write_synthetic_capture(tmp_path / "in", "cap", 0, samples=32, lines=12, ref_lines=8, bad_columns=(5,))
    return lambda out: [tmp_path / "in", out, "--format", "npy"], "cap.npy", "cap_preview.png"


COMMANDS = {"recon": _recon, "convert": _convert, "synth": _synth, "calibrate": _calibrate}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_rerun_with_preview_adds_previews_from_the_cubes(hstool, tmp_path, tmp_cube, command):
    args, cube_name, preview_name = COMMANDS[command](tmp_path, tmp_cube)

    def run(out, *extra):
        return hstool(command, *args(out), *extra)

    once, twice = tmp_path / "once", tmp_path / "twice"
    r = run(once, "--preview")
    assert r.exit_code == 0, r.output
    r = run(twice)
    assert r.exit_code == 0, r.output
    cube = twice / cube_name
    before = (cube.read_bytes(), cube.stat().st_mtime_ns)
    assert not (twice / preview_name).exists()

    r = run(twice, "--preview", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["written"] == [] and report["previews"] == [str(twice / preview_name)]
    assert "writing their missing previews from the cubes" in r.stderr
    assert (cube.read_bytes(), cube.stat().st_mtime_ns) == before  # the cube is kept, not redone
    np.testing.assert_array_equal(read_rgb(twice / preview_name), read_rgb(once / preview_name))

    # a job missing its cube but holding a preview is not half redone: skipped whole, as before
    cube.unlink()
    r = run(twice, "--preview", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["previews"] == [] and not cube.exists()
    assert "skipped 1" in r.stderr and json.loads(r.stdout)["incomplete"][0]["missing"][0].startswith(str(cube))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_preview_older_than_its_cube_is_said_and_rendered_again(hstool, tmp_path, tmp_cube, command):
    """--overwrite without --preview replaces the cube and leaves the earlier preview (said, not
    deleted); a later --preview run renders it again from the new cube instead of keeping it."""
    import os

    args, cube_name, preview_name = COMMANDS[command](tmp_path, tmp_cube)
    out = tmp_path / "out"
    assert hstool(command, *args(out), "--preview").exit_code == 0
    png = out / preview_name
    os.utime(png, ns=(1, 1))  # the earlier run's preview: older than any cube written from now on
    r = hstool(command, *args(out), "--overwrite")
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert f"1 preview(s) of an earlier run stay beside the cubes this run replaces and show the old ones ({png})" in said
    assert png.stat().st_mtime_ns == 1
    r = hstool(command, *args(out), "--preview", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["previews"] == [str(png)] and "(1 older than their cube)" in r.stderr
    assert png.stat().st_mtime_ns >= (out / cube_name).stat().st_mtime_ns
    r = hstool(command, *args(out), "--preview", "--json")  # now current: nothing to do
    assert r.exit_code == 0 and json.loads(r.stdout)["previews"] == []


def test_a_preview_that_cannot_be_made_fails_alone(hstool, tmp_path, tmp_cube):
    """A cube in the output folder that no longer reads: that preview fails, named, the run exits 1."""
    _, cube_name, preview_name = _convert(tmp_path, tmp_cube)
    write_cube(tmp_cube(12, 16, seed=4), tmp_path / "in" / "other.npy")
    out = tmp_path / "out"
    assert hstool("convert", tmp_path / "in", out, "--format", "npy").exit_code == 0
    (out / cube_name).write_bytes(b"not a cube any more")
    r = hstool("convert", tmp_path / "in", out, "--format", "npy", "--preview", "--json")
    assert r.exit_code == 1 and "Traceback" not in r.output
    report = json.loads(r.stdout)
    assert report["previews"] == [str(out / "other_preview.png")]
    assert [f["preview"] for f in report["failed"]] == [str(out / preview_name)]
    assert str(out / cube_name) in report["failed"][0]["error"]
    assert (out / "other_preview.png").exists() and not (out / preview_name).exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_job_whose_last_write_fails_leaves_none_of_its_new_files(hstool, tmp_path, tmp_cube, monkeypatch, command):
    """The preview is each job's last file: when writing it fails, the cube (and calibrate's
    sidecar) written just before are removed again, so a rerun finds no half-done job."""
    import importlib

    args, *_ = COMMANDS[command](tmp_path, tmp_cube)
    module = importlib.import_module(f"hstool.cli.{command}")

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "write_preview", full_disk, raising=False)
    if command == "recon":  # recon imports it where it runs
        monkeypatch.setattr("hstool.hsdata.render.write_preview", full_disk)
    out = tmp_path / "out"
    r = hstool(command, *args(out), "--preview")
    assert r.exit_code == 1 and "No space left on device" in r.stderr, r.output
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_a_rerun_preview_keeps_the_files_own_units_and_reads_a_forced_format(hstool, tmp_path, tmp_cube):
    """The cube file's own units win over the rerun's options (calibrate --to dn over a reflectance
    .npz that keeps no record of its settings: an older hstool's, which a rerun skips; one that
    does is refused); a converted cube's source is read with its --in-format."""
    write_synthetic_capture(tmp_path / "raw", "cap", 0, samples=32, lines=12, ref_lines=8, bad_columns=(5,))
    once, twice = tmp_path / "once", tmp_path / "twice"
    assert hstool("calibrate", tmp_path / "raw", once, "-f", "npz", "--preview").exit_code == 0
    assert hstool("calibrate", tmp_path / "raw", twice, "-f", "npz").exit_code == 0
    r = hstool("calibrate", tmp_path / "raw", twice, "-f", "npz", "--to", "dn", "--preview")
    assert r.exit_code == 1 and "made with other settings (to reflectance, not dn)" in r.stderr
    assert not (twice / "cap.png").exists()

    def unrecorded(cube_file):  # as an older hstool wrote it: no provenance in the cube or its sidecar
        sidecar = cube_file.with_suffix(".json")
        sidecar.write_text(json.dumps({k: v for k, v in json.loads(sidecar.read_text()).items() if k != "provenance"}))
        if cube_file.suffix == ".npz":
            cube = read_cube(cube_file)
            meta = {k: v for k, v in cube.meta.items() if k not in ("provenance", "source", "format")}
            write_cube(Cube(cube.data, cube.wavelengths, meta), cube_file, overwrite=True)

    unrecorded(twice / "cap.npz")
    r = hstool("calibrate", tmp_path / "raw", twice, "-f", "npz", "--to", "dn", "--preview")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read_rgb(twice / "cap_preview.png"), read_rgb(once / "cap_preview.png"))
    # a .npy keeps no units: the sidecar written with it says reflectance, whatever --to says now
    assert hstool("calibrate", tmp_path / "raw", tmp_path / "npy", "-f", "npy").exit_code == 0
    unrecorded(tmp_path / "npy" / "cap.npy")
    r = hstool("calibrate", tmp_path / "raw", tmp_path / "npy", "-f", "npy", "--to", "dn", "--preview")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read_rgb(tmp_path / "npy" / "cap_preview.png"), read_rgb(once / "cap_preview.png"))

    write_cube(tmp_cube(8, 10), tmp_path / "src" / "scene.npz")
    (tmp_path / "src" / "scene.npz").rename(tmp_path / "src" / "scene.bin")
    args = [tmp_path / "src" / "scene.bin", tmp_path / "conv", "--in-format", "npz", "-f", "npy"]
    assert hstool("convert", *args, "--preview").exit_code == 0
    first = (tmp_path / "conv" / "scene_preview.png").read_bytes()
    (tmp_path / "conv" / "scene_preview.png").unlink()
    r = hstool("convert", *args, "--preview")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "conv" / "scene_preview.png").read_bytes() == first
