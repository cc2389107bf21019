"""Issue #29, items 2 and 3: each image's own track, and cubes that say what made them."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

from hstool.camera import image_track, simulate_to_file
from hstool.hsdata import Cube, read_cube, write_cube
from hstool.hsdata.provenance import read_provenance, read_sidecar, settings_differ
from hstool.recon import Reconstructor
from hstool.recon.weights import bundled_path


@pytest.fixture
def images(tmp_cube, tmp_path):
    """One scene as the clean track's PNG and the real-world track's JPEG, neither named by its track."""
    cube = tmp_cube(20, 28)
    folder = tmp_path / "in"
    return (simulate_to_file(cube, folder / "scene_a.png", "clean", rng=0),
            simulate_to_file(cube, folder / "scene_b.jpg", "realworld", rng=0))


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- item 2: the track follows the input ------------------------------------------------------

@pytest.mark.parametrize("name, track", [
    ("ARAD_HS_0451_clean.jpg", "clean"),  # the name wins over the encoding
    ("ARAD_HS_0451_CLEAN.jpg", "clean"),
    ("ARAD_HS_0451_RealWorld.png", "realworld"),
    ("ARAD_HS_0451_realworld.tif", "realworld"),
    ("ARAD_1K_0001_NTIRE2022.png", "ntire2022"),
])
def test_a_track_suffix_in_the_name_decides(tmp_path, name, track):
    path = tmp_path / name
    cv2.imwrite(str(path), np.full((4, 5, 3), 90, np.uint8))
    assert image_track(path) == (track, "name")


def test_otherwise_the_encoding_decides_by_the_bytes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), np.uint8)
    for name, track in [("photo.jpg", "realworld"), ("photo.jpeg", "realworld"), ("scan.png", "clean"),
                        ("scan.tif", "clean"), ("scan16.png", "clean"), ("x_rgb.jpg", "realworld")]:
        path = tmp_path / name
        cv2.imwrite(str(path), rgb.astype(np.uint16) * 257 if "16" in name else rgb)
        assert image_track(path) == (track, "encoding"), name
    disguised = tmp_path / "actually_jpeg.png"  # a JPEG stream under a PNG name is a JPEG
    disguised.write_bytes((tmp_path / "photo.jpg").read_bytes())
    assert image_track(disguised) == ("realworld", "encoding")


def test_a_mixed_batch_runs_each_image_with_its_own_weights(hstool, images, tmp_path):
    png, jpg = images
    out = tmp_path / "out"
    r = hstool("recon", png.parent, "--model", "linear", "--out", out, "-f", "npz", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["input"]: row for row in json.loads(r.stdout)["written"]}
    assert (rows[str(png)]["track"], rows[str(png)]["track_from"]) == ("clean", "encoding")
    assert (rows[str(jpg)]["track"], rows[str(jpg)]["track_from"]) == ("realworld", "encoding")
    for image, track in ((png, "clean"), (jpg, "realworld")):
        expected = Reconstructor("linear", track=track)(cv2.imread(str(image))[..., ::-1].copy())
        np.testing.assert_allclose(read_cube(out / f"{image.stem}.npz").data, expected, rtol=1e-6, atol=1e-7)
    clean, realworld = (read_cube(out / f"scene_{k}.npz").data for k in "ab")
    assert np.abs(clean - realworld).max() > 1e-3  # the two weights give different cubes
    r = hstool("recon", png.parent, "--model", "linear", "--out", tmp_path / "given", "--track", "realworld")
    assert r.exit_code == 0 and "realworld (--track)" in r.stdout and "clean" not in r.stdout  # --track wins
    assert read_provenance(tmp_path / "given" / "scene_a.mat")["track"] == "realworld"


def test_an_image_of_a_track_without_weights_fails_alone(hstool, images, tmp_path):
    png, _ = images
    png.with_name("other_ntire2022.png").write_bytes(png.read_bytes())
    r = hstool("recon", png.parent, "--model", "linear", "--out", tmp_path / "out")
    assert r.exit_code == 1 and "1 of 3 failed" in r.stderr
    assert "other_ntire2022.png" in r.stderr and "no bundled weights for model 'linear' on track 'ntire2022'" in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mat")) == ["scene_a.mat", "scene_b.mat"]


# --- item 3: provenance in every output -------------------------------------------------------

@pytest.mark.parametrize("fmt, cube_file", [("mat", "scene_b.mat"), ("mat5", "scene_b.mat"), ("envi", "scene_b.hdr"),
                                            ("npz", "scene_b.npz"), ("npy", "scene_b.npy")])
def test_provenance_round_trips_through_every_format_and_info_shows_it(hstool, images, tmp_path, fmt, cube_file):
    _, jpg = images
    out = tmp_path / "out"
    r = hstool("recon", jpg, "--model", "rootpoly", "--out", out, "-f", fmt, "--consistent", "--ensemble",
               "--tile", "64", "--exposure-invariant")
    assert r.exit_code == 0, r.output
    expected = {
        "model": "rootpoly", "weights": "rootpoly_realworld.safetensors",
        "weights_sha256": _sha256(bundled_path("rootpoly", "realworld")), "track": "realworld",
        "track_from": "encoding", "consistent": "d40", "exposure_invariant": True, "gamma": 1.0, "ensemble": True,
        "precision": "fp32", "tile": 64, "input": "scene_b.jpg",
    }
    sidecar = read_sidecar(out / cube_file)["provenance"]
    assert {k: sidecar[k] for k in expected} == expected and sidecar["hstool_version"]
    own = read_cube(out / cube_file).meta.get("provenance")  # inside the cube file itself, except .npy's array
    assert own == (None if fmt == "npy" else sidecar)
    (out / "scene_b.json").unlink()  # the cube alone still says what made it (.npy: nothing to say)
    assert read_provenance(out / cube_file) == (None if fmt == "npy" else sidecar)
    if fmt == "npy":
        (out / "scene_b.json").write_text(json.dumps({"provenance": sidecar}))
    info = json.loads(hstool("info", out / cube_file, "--json").stdout)
    assert info["provenance"] == sidecar and "provenance" not in info["meta"]
    table = hstool("info", out / cube_file).stdout
    assert "provenance" in table and "rootpoly_realworld.safetensors" in table


def test_cube_formats_keep_a_provenance_record(tmp_cube, tmp_path):
    """The writers and readers themselves, as for any cube: .mat (v7.3 and v5), ENVI and .npz."""
    record = {"model": "x", "weights_sha256": "ab" * 32, "tile": None, "gamma": "srgb", "ensemble": False,
              "nested": {"a": [1, 2]}, "input": "photo #1, café.jpg"}
    cube = tmp_cube(5, 6, provenance=record)
    for name, options in (("a.mat", {}), ("b.mat", {"version": "5"}), ("c.hdr", {}), ("d.npz", {})):
        write_cube(cube, tmp_path / name, **options)
        assert read_cube(tmp_path / name).meta["provenance"] == record, name
    import h5py  # MATLAB's view: a char variable beside ARAD's, which ARAD readers skip

    with h5py.File(tmp_path / "a.mat", "r") as f:
        assert sorted(f.keys()) == ["bands", "cube", "provenance", "units"]
        assert f["provenance"].attrs["MATLAB_class"] == b"char"


def test_a_rerun_with_other_settings_is_refused_without_overwrite(hstool, images, tmp_path):
    png, jpg = images
    out = tmp_path / "out"
    assert hstool("recon", png, jpg, "--model", "linear", "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = hstool("recon", png, jpg, "--model", "rootpoly", "--out", out, "--json")
    assert r.exit_code == 1
    failed = json.loads(r.stdout)["failed"]
    assert [f["input"] for f in failed] == [str(png), str(jpg)]
    assert "made with other settings (model linear, not rootpoly" in failed[0]["error"]
    assert r.stderr.count("made with other settings") == 2 and "skipped" not in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing replaced
    r = hstool("recon", png, "--model", "linear", "--out", out, "--ensemble")  # an option that changes numbers
    assert r.exit_code == 1 and "ensemble False, not True" in r.stderr
    r = hstool("recon", png, jpg, "--model", "linear", "--out", out)  # the same settings: skipped as ever
    assert r.exit_code == 0 and "skipped 2 image(s)" in r.stderr
    r = hstool("recon", png, jpg, "--model", "rootpoly", "--out", out, "--overwrite")
    assert r.exit_code == 0 and read_provenance(out / "scene_a.mat")["model"] == "rootpoly"


def test_cubes_an_older_hstool_wrote_without_a_record_are_skipped_and_get_previews(hstool, images, tmp_cube, tmp_path):
    png, jpg = images
    old = tmp_path / "old"
    for name in ("scene_a", "scene_b"):  # as recon wrote them before provenance: a cube, no sidecar
        write_cube(tmp_cube(20, 28), old / f"{name}.mat")
    r = hstool("recon", png, jpg, "--model", "rootpoly", "--out", old, "--preview")
    assert r.exit_code == 0 and "2 image(s) already done" in r.stderr and "incomplete" not in r.output, r.output
    assert sorted(p.name for p in old.iterdir()) == ["scene_a.mat", "scene_a_preview.png", "scene_b.mat",
                                                     "scene_b_preview.png"]


def test_settings_differ_names_what_was_made_and_what_is_asked():
    made = {"model": "hrnet_s", "weights_sha256": "a" * 64, "tile": None}
    wanted = {"model": "mstpp_s", "weights_sha256": "b" * 64, "tile": None}
    assert settings_differ(made, wanted, ("model", "weights_sha256", "tile")) == [
        "model hrnet_s, not mstpp_s", f"weights sha256 {'a' * 12}, not {'b' * 12}"]
    assert settings_differ(made, made, ("model", "tile")) == []


def test_calibrate_and_recon_write_one_kind_of_sidecar(tmp_path, tmp_cube):
    from hstool.hsdata.provenance import write_sidecar

    cube = Cube(tmp_cube(3, 4).data, tmp_cube(3, 4).wavelengths, {"units": "reflectance", "n": np.int64(3)})
    path = write_sidecar(cube, tmp_path / "x.mat")
    assert path == tmp_path / "x.json"
    assert json.loads(path.read_text()) == {"units": "reflectance", "n": 3, "wavelengths": cube.wavelengths.tolist()}


def test_calibrate_records_its_settings_and_refuses_a_rerun_with_others(hstool, tmp_path):
    from hstool.hsdata.specim_synthetic import write_synthetic_capture

    raw = tmp_path / "raw"
    write_synthetic_capture(raw, "a", 0, samples=32, lines=12, ref_lines=8, bad_columns=(5,))
    out = tmp_path / "out"
    assert hstool("calibrate", raw, out, "--drop-columns", "auto").exit_code == 0
    record = read_cube(out / "a.mat").meta["provenance"]  # in the .mat itself, and in the sidecar
    assert record == json.loads((out / "a.json").read_text())["provenance"]
    assert (record["command"], record["input"], record["to"], record["drop_columns"]) == ("calibrate", "a",
                                                                                         "reflectance", "auto")
    assert record["bands"] == list(range(400, 701, 10)) and record["hstool_version"]
    assert json.loads(hstool("info", out / "a.mat", "--json").stdout)["provenance"] == record
    before = (out / "a.mat").read_bytes()
    r = hstool("calibrate", raw, out, "--drop-columns", "none")
    assert r.exit_code == 1 and "made with other settings (drop columns auto, not none)" in r.stderr
    assert (out / "a.mat").read_bytes() == before
    assert hstool("calibrate", raw, out, "--drop-columns", "auto").exit_code == 0  # the same: skipped
    assert hstool("calibrate", raw, out, "--drop-columns", "none", "--overwrite").exit_code == 0
    assert read_provenance(out / "a.mat")["drop_columns"] == "none"


def test_convert_and_simulate_record_what_they_did_over_what_made_their_input(hstool, images, tmp_path, tmp_cube):
    png, _ = images
    assert hstool("recon", png, "--model", "linear", "--out", tmp_path / "rec").exit_code == 0
    made = read_provenance(tmp_path / "rec" / "scene_a.mat")
    out = tmp_path / "envi"
    assert hstool("convert", tmp_path / "rec" / "scene_a.mat", out, "-f", "envi", "--bands", "400:700:20").exit_code == 0
    record = read_cube(out / "scene_a.hdr").meta["provenance"]
    assert (record["command"], record["input"], record["bands"]) == ("convert", "scene_a.mat", list(range(400, 701, 20)))
    assert record["made_from"] == made  # the recon record, whole
    r = hstool("convert", tmp_path / "rec" / "scene_a.mat", out, "-f", "envi", "--bands", "400:700:10")
    assert r.exit_code == 1 and "made with other settings (bands" in r.stderr
    write_cube(tmp_cube(8, 8), tmp_path / "gt" / "x.mat")
    r = hstool("simulate", tmp_path / "gt" / "x.mat", tmp_path / "sim", "--brightness", "2", "--seed", "3")
    assert r.exit_code == 0, r.output
    record = read_cube(tmp_path / "sim" / "x_clean.mat").meta["provenance"]  # the scaled cube the image shows
    assert (record["command"], record["brightness"], record["seed"], record["pipeline"]["css"]) == (
        "simulate", 2.0, 3, "cie1964")
    before = {p.name: p.read_bytes() for p in (tmp_path / "sim").iterdir()}
    r = hstool("simulate", tmp_path / "gt" / "x.mat", tmp_path / "sim", "--brightness", "0.5", "--seed", "3")
    assert r.exit_code == 1 and "made with other settings (brightness 2.0, not 0.5)" in r.stderr, r.output
    r = hstool("simulate", tmp_path / "gt" / "x.mat", tmp_path / "sim", "--brightness", "2", "--seed", "3",
               "--npe", "1000")
    assert r.exit_code == 1 and "another camera pipeline" in r.stderr, r.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "sim").iterdir()} == before
    r = hstool("simulate", tmp_path / "gt" / "x.mat", tmp_path / "sim", "--brightness", "2", "--seed", "3")
    assert r.exit_code == 0 and "skipped 1" in r.stderr  # the same settings: skipped as ever
