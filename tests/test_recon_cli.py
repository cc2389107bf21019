"""``hstool recon`` and ``hstool models`` through the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from hstool.camera import simulate_to_file, track
from hstool.hsdata import read_cube, read_rgb


@pytest.fixture
def clean_png(tmp_cube, tmp_path):
    cube = tmp_cube(20, 28)
    return simulate_to_file(cube, tmp_path / "in" / "ARAD_HS_0451_clean.png", "clean", rng=0), cube


def test_recon_writes_a_cube_named_by_stem(hstool, clean_png, tmp_path):
    png, _ = clean_png
    out = tmp_path / "out"
    r = hstool("recon", png, "--model", "linear", "--out", out, "--format", "npy", "--preview")
    assert r.exit_code == 0, r.output
    cube = read_cube(out / "ARAD_HS_0451.npy")
    assert cube.shape == (20, 28, 31) and cube.data.min() >= 0
    np.testing.assert_allclose(cube.wavelengths, np.arange(400, 701, 10))
    assert (out / "ARAD_HS_0451_preview.png").exists()
    r = hstool("recon", png, "--model", "linear", "--out", tmp_path / "o2", "--preview", "--json")
    row = json.loads(r.stdout)["written"][0]  # the preview a run writes is listed with its cube
    assert row["preview"] == str(tmp_path / "o2" / "ARAD_HS_0451_preview.png") and row["files"][-1] == row["preview"]
    before = (out / "ARAD_HS_0451.npy").read_bytes()
    (out / "ARAD_HS_0451.npy").write_bytes(b"mine")
    r = hstool("recon", png, "--model", "linear", "--out", out, "--format", "npy", "--json")
    assert r.exit_code == 0 and "skipped 1 image(s)" in r.stderr  # skipped like every batch, no overwrite
    assert json.loads(r.stdout)["skipped"] == [str(out / "ARAD_HS_0451.npy")]
    assert (out / "ARAD_HS_0451.npy").read_bytes() == b"mine"
    r = hstool("recon", png, "--model", "linear", "--out", out, "--format", "npy", "--overwrite")
    assert r.exit_code == 0 and (out / "ARAD_HS_0451.npy").read_bytes() == before


def test_recon_never_overwrites_an_input_image(hstool, clean_png, tmp_path):
    """An input named like another input's preview: refused before any work, --overwrite or not."""
    png, _ = clean_png
    other = png.with_name("ARAD_HS_0451_preview.png")
    other.write_bytes(png.read_bytes())
    for extra in ((), ("--overwrite",)):
        r = hstool("recon", png.parent, "--model", "linear", "--out", png.parent, "--preview", *extra)
        assert r.exit_code == 1 and "output would overwrite an input file" in r.stderr
        assert other.read_bytes() == png.read_bytes() and not list(png.parent.glob("*.mat"))
    twin = tmp_path / "twin" / "ARAD_HS_0451_RealWorld.png"
    twin.parent.mkdir()
    twin.write_bytes(png.read_bytes())
    r = hstool("recon", png, twin, "--model", "linear", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "would both write this output" in r.stderr


def test_recon_workers_with_a_deep_model(clean_png, tmp_path):
    """Worker processes after the parent ran a model (fork would hang in OpenMP): a subprocess with
    a time limit, so a hang fails the test instead of the suite."""
    import subprocess
    import sys

    png, _ = clean_png
    second = png.with_name("ARAD_HS_0452_clean.png")
    second.write_bytes(png.read_bytes())
    code = "import sys; from hstool.cli.main import run; sys.argv[0] = 'hstool'; run()"
    proc = subprocess.run([sys.executable, "-c", code, "recon", str(png.parent), "-m", "mstpp_s", "-j", "2",
                           "--out", str(tmp_path / "o"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    a, b = (read_cube(tmp_path / "o" / f"ARAD_HS_045{i}.mat").data for i in (1, 2))
    np.testing.assert_array_equal(a, b)


def test_consistent_output_reprojects_to_the_input(hstool, clean_png, tmp_path):
    png, _ = clean_png
    r = hstool("recon", png.parent, "--model", "rootpoly", "--out", tmp_path / "o", "--format", "npz",
               "--consistent", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["written"]
    assert rows[0]["infeasible"] == 0
    cube = read_cube(tmp_path / "o" / "ARAD_HS_0451.npz")
    codes = np.round(read_rgb(png) * 255)
    back = cube.data.astype(np.float64) @ track("clean").matrix(cube.wavelengths)
    # the clean track floors: code k stands for [k, k + 1) / 255, and the spectra aim at its middle
    middle = np.where(codes < 255, (codes + 0.5) / 255, 1.0)
    assert np.abs(back - middle).max() < 1e-5 and cube.data.min() >= 0
    # so the camera, run again on the reconstruction, writes the very image it was given
    from hstool.camera import simulate

    again = simulate(cube.with_data(cube.data), "clean")
    np.testing.assert_array_equal(np.round(again * 255), codes)


def test_bad_inputs_fail_one_line_each_and_the_rest_carry_on(hstool, clean_png, tmp_path):
    png, _ = clean_png
    folder = png.parent
    (folder / "broken.png").write_bytes(b"not an image")
    cv2.imwrite(str(folder / "grey.png"), np.full((6, 6), 128, np.uint8))
    cv2.imwrite(str(folder / "deep16.png"), np.full((7, 9, 3), 30000, np.uint16))
    cv2.imwrite(str(folder / "tiny.png"), np.full((5, 5, 3), 90, np.uint8))
    out = tmp_path / "o"
    r = hstool("recon", folder, "--model", "sparse", "--track", "realworld", "--out", out, "--format", "npy")
    assert r.exit_code == 1
    # another folder: a cube of another format beside the npy one would share its sidecar (incomplete)
    assert hstool("recon", png, "--model", "linear", "--out", tmp_path / "o2", "--format", "mat5").exit_code == 0
    assert read_cube(tmp_path / "o2" / "ARAD_HS_0451.mat").shape == (20, 28, 31)
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, r.output
    assert any("broken.png" in e for e in errors) and any("grey.png" in e and "greyscale" in e for e in errors)
    assert "2 of 5 failed" in r.output
    assert read_cube(out / "deep16.npy").shape == (7, 9, 31)
    assert read_cube(out / "tiny.npy").shape == (5, 5, 31)
    assert (out / "ARAD_HS_0451.npy").exists()


def test_recon_needs_a_model_and_knows_its_models(hstool, clean_png):
    png, _ = clean_png
    r = hstool("recon", png, "-m", "linear", "--precision", "fp8")
    assert r.exit_code == 1 and "unknown precision 'fp8'" in r.stderr and "Traceback" not in r.output
    r = hstool("recon", png, "-m", "mstpp_s", "--precision", "fp16", "--device", "cpu")  # not silently fp32
    assert r.exit_code == 1 and "--precision fp16: mstpp_s computes in fp32 on cpu" in r.stderr
    r = hstool("recon", png, "-m", "mstpp_s", "--tile", "32")  # checked once, before any image
    assert r.exit_code == 1 and r.stderr.count("error:") == 1 and "use --tile of at least 84" in r.stderr
    r = hstool("recon", png)
    assert r.exit_code == 1 and "--model" in r.output
    r = hstool("recon", png, "--model", "nosuchmodel")
    assert r.exit_code == 1 and "unknown model" in r.output


def test_speed_column_says_where_it_was_measured():
    from hstool.cli.models import _speed

    assert _speed({"speed": {"seconds_per_482x512": 0.2205, "device": "NVIDIA H200"}}) == "0.221 s GPU"
    assert _speed({"speed": {"seconds_per_482x512": 0.0481, "device": "cpu (1 threads)"}}) == "0.0481 s CPU"
    assert _speed({"speed": None}) == "-"


def test_models_lists_kinds_parameters_and_bundled_weights(hstool):
    r = hstool("models", "--json")
    assert r.exit_code == 0, r.output
    rows = {m["name"]: m for m in json.loads(r.stdout)}
    lin = rows["linear"]
    assert lin["kind"] == "pixel" and lin["parameters"] == 3 * 31
    assert {b["track"] for b in lin["bundled"]} == {"clean", "realworld"}
    assert all(b["val_mrae"] > 0 and b["train_command"].startswith("hstool train") for b in lin["bundled"])
    r = hstool("models", "root*")
    assert r.exit_code == 0 and "rootpoly" in r.output and "linear" not in r.output
    assert "CPU" in r.output  # the pixel models' speed was measured on the CPU, and says so
    r = hstool("models", "list", "--json")  # `list` is the bare command, not a pattern matching nothing
    assert r.exit_code == 0 and {m["name"] for m in json.loads(r.stdout)} == set(rows)
    r = hstool("models", "list", "root*", "--json")
    assert r.exit_code == 0 and [m["name"] for m in json.loads(r.stdout)] == ["rootpoly"]
    r = hstool("models", "export", "linear")
    assert r.exit_code == 2 and "export takes NAME OUT.onnx" in r.output  # a usage error, as every command's


def test_models_lists_one_track_and_describes_a_weights_file(hstool, tmp_path):
    from hstool.recon.weights import bundled_path, read_metadata

    r = hstool("models", "--track", "realworld", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert rows and all([b["track"] for b in m["bundled"]] == ["realworld"] for m in rows)
    assert {m["name"] for m in rows} == {f.stem.rsplit("_", 1)[0] for f in bundled_path("x", "y").parent.glob("*_realworld.safetensors")}
    r = hstool("models", "root*", "--track", "ntire2022")
    assert r.exit_code == 1 and "no model matching 'root*' has bundled weights for the ntire2022 track" in r.stderr
    r = hstool("models", "--track", "dusk")
    assert r.exit_code == 1 and "unknown track 'dusk'" in r.stderr

    path = bundled_path("basisunet", "clean")  # trained with --config: counted as built from it
    r = hstool("models", "-w", path, "--json")
    assert r.exit_code == 0, r.output
    record, meta = json.loads(r.stdout), read_metadata(path)
    assert record["name"] == "basisunet" and record["track"] == "clean" and record["config"] == meta["config"]
    assert record["val_mrae"] == meta["val_mrae"] and record["train_command"] == meta["train_command"]
    from hstool.recon import create_model

    model = create_model(None, path)
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    r = hstool("models", "-w", path)
    assert r.exit_code == 0 and "basisunet" in r.stdout and "norm=batch" in r.stdout

    for args, said in [(("--opset", "13"), "--opset acts on export"),
                       (("--overwrite",), "--overwrite acts on export"),
                       (("-w", path, "root*"), "--weights describes one file"),
                       (("-w", path, "--track", "clean"), "--weights describes one file")]:
        r = hstool("models", *args)
        assert r.exit_code == 1 and said in r.stderr, (args, r.output)
    r = hstool("models", "export", "basisunet", tmp_path / "b.onnx", "-w", path, "--track", "realworld")
    assert r.exit_code == 1 and "trained for the clean track" in r.stderr and not (tmp_path / "b.onnx").exists()
    bogus = tmp_path / "w.safetensors"
    bogus.write_bytes(b"not weights")
    r = hstool("models", "-w", bogus)
    assert r.exit_code == 1 and f"{bogus}: not a safetensors weights file" in r.stderr and "Traceback" not in r.output


def test_gamma_srgb_reconstructs_a_photo_as_its_linear_original(hstool, clean_png, tmp_path):
    from hstool.hsdata import write_rgb
    from hstool.hsdata.render import srgb_encode

    png, _ = clean_png
    lin = read_rgb(png)
    write_rgb(tmp_path / "photo" / "P.png", np.rint(srgb_encode(lin) * 65535).astype(np.uint16))
    write_rgb(tmp_path / "linear" / "P.png", np.rint(lin * 65535).astype(np.uint16))
    cubes = {}
    for folder, gamma in (("photo", "srgb"), ("linear", "1"), ("photo", "1")):
        out = tmp_path / f"out_{folder}_{gamma}"
        r = hstool("recon", tmp_path / folder, "--model", "rootpoly", "--gamma", gamma, "-f", "npy", "-o", out)
        assert r.exit_code == 0, r.output
        cubes[folder, gamma] = read_cube(out / "P.npy").data
    want = cubes["linear", "1"]
    assert np.abs(cubes["photo", "srgb"] - want).max() < 1e-3 * want.max()  # 16-bit rounding only
    assert np.abs(cubes["photo", "1"] - want).max() > 0.05 * want.max()  # the encoding left in: wrong
    r = hstool("recon", png, "--model", "rootpoly", "--gamma", "log", "-o", tmp_path / "x")
    assert r.exit_code == 1 and "--gamma must be a number or 'srgb', got 'log'" in r.output
    assert not (tmp_path / "x").exists()


def test_a_reconstruction_previews_as_its_ground_truth_does(hstool, tmp_path):
    """The models estimate ARAD-style normalised light, not reflectance: the cube carries no
    reflectance label, so its preview is rendered as light, like the ground truth's (not relit by D65)."""
    from hstool.hsdata.render import preview_image
    from hstool.hsdata.sample import sample_dir

    out = tmp_path / "out"
    r = hstool("recon", sample_dir() / "SYNTH_test_0000_clean.png", "--model", "mstpp_s", "-o", out, "--preview")
    assert r.exit_code == 0, r.output
    cube = read_cube(out / "SYNTH_test_0000.mat")
    assert "units" not in cube.meta or cube.meta["units"] != "reflectance"
    gt = preview_image(read_cube(sample_dir() / "SYNTH_test_0000.mat")).reshape(-1, 3).mean(axis=0)
    got = read_rgb(out / "SYNTH_test_0000_preview.png").reshape(-1, 3).mean(axis=0) * 255
    assert np.abs(got - gt).max() < 4, (got, gt)  # a D65 relighting was off by 16 levels in red


def test_a_preview_hstool_wrote_is_not_reconstructed_over_its_cube(hstool, tmp_path, tmp_cube):
    """calibrate/synth --preview write NAME.png beside NAME.mat: recon on that folder, even with
    --overwrite, must not take the sRGB preview for camera RGB and replace the cube with it."""
    from hstool.hsdata import write_cube
    from hstool.hsdata.formats.image import is_preview
    from hstool.hsdata.render import write_preview

    cube = tmp_cube(12, 14)
    write_cube(cube, tmp_path / "scene.mat")
    write_preview(cube, tmp_path / "scene.png")
    before = (tmp_path / "scene.mat").read_bytes()
    assert is_preview(tmp_path / "scene.png") and read_rgb(tmp_path / "scene.png").shape == (12, 14, 3)
    r = hstool("recon", tmp_path, "--model", "linear", "-o", tmp_path, "--overwrite")  # a folder: left out
    assert r.exit_code == 1 and "left out 1 sRGB preview(s) hstool wrote of cubes, not camera RGB: scene.png" in r.stderr
    r = hstool("recon", tmp_path / "scene.png", "--model", "linear", "-o", tmp_path, "--overwrite")  # named: refused
    assert r.exit_code == 1 and "scene.png: an sRGB preview hstool wrote of a cube" in r.stderr, r.output
    assert (tmp_path / "scene.mat").read_bytes() == before
    simulate_to_file(cube, tmp_path / "cam" / "scene_clean.png", "clean")  # a camera's image is not one
    assert not is_preview(tmp_path / "cam" / "scene_clean.png")


def test_a_weights_files_track_is_not_contradicted(hstool, clean_png, tmp_path):
    from hstool.recon.weights import bundled_path

    png, _ = clean_png
    weights = bundled_path("linear", "realworld")
    r = hstool("recon", png, "-w", weights, "--track", "clean", "-o", tmp_path / "a")
    assert r.exit_code == 1 and "these weights were trained for the realworld track" in r.output
    assert not (tmp_path / "a").exists()
    for extra in ([], ["--track", "RealWorld"]):  # the file's own track, named or not
        r = hstool("recon", png, "-w", weights, *extra, "-o", tmp_path / "b", "--overwrite")
        assert r.exit_code == 0, r.output


def test_precision_device_and_formats_take_any_case(hstool, clean_png, tmp_path):
    png, _ = clean_png
    r = hstool("recon", png, "--model", "linear", "--precision", "FP32", "--device", "CPU", "--out", tmp_path / "o",
               "-f", "NPZ")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "ARAD_HS_0451.npz").exists()
    r = hstool("info", tmp_path / "o" / "ARAD_HS_0451.npz", "--in-format", "NPZ", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["format"] == "npz"


def test_a_track_is_one_name_however_it_is_spelt(hstool, clean_png, tmp_path):
    """Weights that say real-world (as an older train stored what was typed) are the realworld track's:
    recon -t realworld / Real-World takes them, -t clean is refused; train stores the name hstool writes."""
    from hstool.recon import create_model
    from hstool.recon.train import TrainConfig
    from hstool.recon.weights import read_metadata, save_weights

    png, _ = clean_png
    w = save_weights(create_model("linear", "bundled", "realworld"), tmp_path / "w.safetensors",
                     {"architecture": "linear", "track": "real-world"})
    for spelling in ("realworld", "Real-World"):
        r = hstool("recon", png, "-w", w, "-t", spelling, "--out", tmp_path / spelling)
        assert r.exit_code == 0, (spelling, r.output)
    r = hstool("recon", png, "-w", w, "-t", "clean", "--out", tmp_path / "c")
    assert r.exit_code == 1 and "trained for the realworld track" in r.stderr
    assert read_metadata(w)["track"] == "real-world"
    assert TrainConfig(model="linear", out="x.safetensors", track="Real_World").track == "realworld"
    r = hstool("models", "--track", "REALWORLD", "--json")
    assert r.exit_code == 0 and all(b["track"] == "realworld" for m in json.loads(r.stdout) for b in m["bundled"])
