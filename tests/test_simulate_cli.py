"""``hstool simulate`` through the CLI: names, batches with a bad file, seeds, transforms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_cube

from hstool.camera import simulate, track
from hstool.cli.simulate import file_seed
from hstool.hsdata import read_cube, read_rgb, write_cube


def cubes(folder, n=2, bad=False):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_cube(make_cube(16, 20, seed=i), folder / f"ARAD_HS_{451 + i:04d}.mat")
    if bad:
        np.save(folder / "broken.npy", np.full((4, 4, 31), np.nan, np.float32))
    return folder


def test_clean_batch_names_and_bad_file(tmp_path, hstool):
    src = cubes(tmp_path / "in", bad=True)
    out = tmp_path / "out"
    res = hstool("simulate", src, out, "--track", "clean")
    assert res.exit_code == 1
    assert "broken.npy" in res.stderr and "NaN" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ARAD_HS_0451_clean.png", "ARAD_HS_0452_clean.png"]
    cube = read_cube(src / "ARAD_HS_0451.mat")
    np.testing.assert_array_equal(read_rgb(out / "ARAD_HS_0451_clean.png"), simulate(cube, "clean"))
    # existing outputs are skipped, not rewritten, without --overwrite
    res = hstool("simulate", src / "ARAD_HS_0451.mat", out)
    assert res.exit_code == 0 and "skipped" in res.stderr


def test_realworld_seeds_do_not_depend_on_workers(tmp_path, hstool):
    src = cubes(tmp_path / "in", n=3)
    a, b = tmp_path / "a", tmp_path / "b"
    assert hstool("simulate", src, a, "--track", "realworld", "--seed", "4").exit_code == 0
    assert hstool("simulate", src / "ARAD_HS_0452.mat", src / "ARAD_HS_0451.mat", b, "-t", "realworld",
                  "--seed", "4", "-j", "2").exit_code == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == [f"ARAD_HS_{i:04d}_RealWorld.jpg" for i in (451, 452, 453)]
    for name in ("ARAD_HS_0451_RealWorld.jpg", "ARAD_HS_0452_RealWorld.jpg"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    # the file is the library's simulate with the file's seed
    cube = read_cube(src / "ARAD_HS_0452.mat")
    noise_seed, _ = file_seed(4, "ARAD_HS_0452").spawn(2)
    expected = simulate(cube, "realworld", np.random.default_rng(noise_seed))
    np.testing.assert_array_equal(read_rgb(a / "ARAD_HS_0452_RealWorld.jpg"), expected)
    # another seed, other noise
    c = tmp_path / "c"
    assert hstool("simulate", src / "ARAD_HS_0452.mat", c, "-t", "realworld", "--seed", "5").exit_code == 0
    assert (c / "ARAD_HS_0452_RealWorld.jpg").read_bytes() != (a / "ARAD_HS_0452_RealWorld.jpg").read_bytes()


def test_overrides_reach_the_pipeline(tmp_path, hstool):
    src = cubes(tmp_path / "in", n=1)
    out = tmp_path / "out"
    res = hstool("simulate", src, out, "-t", "realworld", "--no-noise", "--pattern", "GRBG", "--demosaic",
                 "bilinear", "--encoding", "png", "--bits", "16", "--gamma", "srgb", "--json")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["pipeline"]["pattern"] == "GRBG" and report["pipeline"]["npe"] is None
    got = read_rgb(out / "ARAD_HS_0451_RealWorld.png")
    p = track("realworld", npe=None, pattern="GRBG", demosaic="bilinear", encoding="png", bits=16, gamma="srgb")
    np.testing.assert_array_equal(got, simulate(read_cube(src / "ARAD_HS_0451.mat"), p))
    bad = hstool("simulate", src, tmp_path / "o2", "--css", str(tmp_path / "missing.csv"))
    assert bad.exit_code == 1 and "missing.csv" in bad.stderr


def test_shuffle_and_brightness_write_aligned_pairs(tmp_path, hstool):
    src = cubes(tmp_path / "in", n=1)
    out = tmp_path / "out"
    res = hstool("simulate", src, out, "--shuffle", "4", "--brightness", "0.5", "--format", "npy")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ARAD_HS_0451_clean.npy", "ARAD_HS_0451_clean.png"]
    gt = read_cube(out / "ARAD_HS_0451_clean.npy")
    original = read_cube(src / "ARAD_HS_0451.mat")
    assert not np.array_equal(gt.data, original.data * np.float32(0.5))
    assert sorted(gt.data.ravel().tolist()) == sorted((original.data * np.float32(0.5)).ravel().tolist())
    np.testing.assert_array_equal(read_rgb(out / "ARAD_HS_0451_clean.png"), simulate(gt, "clean"))


def test_brightness_alone_writes_the_scaled_cube_the_image_shows_and_score_pairs_them(tmp_path, hstool):
    """The brightness test through the CLI: X_RealWorld.jpg and the cube x2 it shows (X_RealWorld.mat),
    so recon's X scores against the scaled cube, not the original (a 2x error that looked like the model's)."""
    src = cubes(tmp_path / "in", n=1)
    out = tmp_path / "out"
    res = hstool("simulate", src, out, "-t", "realworld", "--brightness", "2", "--seed", "1")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ARAD_HS_0451_RealWorld.jpg", "ARAD_HS_0451_RealWorld.mat"]
    original = read_cube(src / "ARAD_HS_0451.mat")
    np.testing.assert_array_equal(read_cube(out / "ARAD_HS_0451_RealWorld.mat").data, original.data * np.float32(2))
    write_cube(original.with_data(original.data * np.float32(2)), tmp_path / "pred" / "ARAD_HS_0451.npy")
    res = hstool("score", tmp_path / "pred", out, "-m", "mrae", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["images"][0]["mrae"] == 0.0
    res = hstool("simulate", src, src, "--brightness", "2")
    assert res.exit_code == 1 and "--brightness writes cubes" in res.stderr


def test_shuffle_relocates_the_image_the_camera_wrote(tmp_path, hstool):
    """The report's spatial test on the real-world track: the noisy, demosaicked, JPEG-compressed
    image is relocated patch by patch (not a relocated cube imaged again, whose patch seams the
    demosaicking and JPEG would blur), written losslessly, with the same permutation as the cube's;
    exactly what `hstool evaluate` scores as its Spatial column."""
    from hstool.camera import capture_seeds, file_seed, shuffle_patches

    src = cubes(tmp_path / "in", n=1)
    out = tmp_path / "out"
    res = hstool("simulate", src, out, "-t", "realworld", "--shuffle", "4", "--seed", "3", "--format", "npy")
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ARAD_HS_0451_RealWorld.npy", "ARAD_HS_0451_RealWorld.png"]
    original = read_cube(src / "ARAD_HS_0451.mat")
    noise_ss, shuffle_ss, *_ = capture_seeds(file_seed(3, "ARAD_HS_0451"))
    rgb = simulate(original, "realworld", np.random.default_rng(noise_ss))  # the JPEG simulate writes, decoded
    gt_s, rgb_s = shuffle_patches(original.data, rgb, block=4, rng=np.random.default_rng(shuffle_ss))
    np.testing.assert_array_equal(read_cube(out / "ARAD_HS_0451_RealWorld.npy").data, gt_s)
    np.testing.assert_array_equal(read_rgb(out / "ARAD_HS_0451_RealWorld.png"), rgb_s)
    assert not np.array_equal(rgb_s, rgb)
    tiny = tmp_path / "tiny"
    write_cube(original.with_data(original.data[:5, :7]), tiny / "T.npy")
    res = hstool("simulate", tiny, tmp_path / "o2", "--shuffle", "4")
    assert res.exit_code == 1 and "fewer than two 4x4 patches" in res.stderr


def test_list_and_plot_css(tmp_path, hstool):
    res = hstool("simulate", "--list-css", "--json")
    assert res.exit_code == 0
    assert [r["name"] for r in json.loads(res.stdout)] == ["cie1964", "d40", "cie1931", "nikon5100",
                                                           "sigma_sd_merrill"]
    res = hstool("simulate", "--plot-css", "d40", tmp_path / "d40.png")
    assert res.exit_code == 0 and (tmp_path / "d40.png").read_bytes()[:4] == b"\x89PNG"
    res = hstool("simulate", "--plot-css", "d40", tmp_path / "d40.txt")
    assert res.exit_code == 1 and "plots are written as PNG" in res.stderr and not (tmp_path / "d40.txt").exists()
    res = hstool("simulate", tmp_path)
    assert res.exit_code == 2 and "Invalid value for CUBES... OUT" in res.stderr


def test_batch_inputs_are_never_outputs_and_outputs_never_collide(tmp_path, hstool):
    src = cubes(tmp_path / "in", n=2)
    # A_clean.mat is an input that --shuffle's cube for A would replace
    (src / "ARAD_HS_0451.mat").rename(src / "A.mat")
    (src / "ARAD_HS_0452.mat").rename(src / "A_clean.mat")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    res = hstool("simulate", src / "A.mat", src / "A_clean.mat", src, "--shuffle", "4", "--overwrite")
    assert res.exit_code == 1 and "A_clean.mat: output would overwrite an input file" in res.stderr
    res = hstool("simulate", src, src, "--shuffle", "4")
    assert res.exit_code == 1 and "read as inputs" in res.stderr
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    # two inputs of one stem would write one output: refused before any work
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "A.mat").write_bytes(before["A.mat"])
    res = hstool("simulate", src / "A.mat", twin / "A.mat", out, "--overwrite")
    assert res.exit_code == 1 and "would both write this output" in res.stderr
    assert not list(out.glob("*.png"))


def test_bad_options_are_refused_before_any_work(tmp_path, hstool):
    src = cubes(tmp_path / "in", n=2)
    out = tmp_path / "out"
    for args, message in (
        (("--target-mean", "0"), "--target-mean must be a positive number"),
        (("--target-mean", "nan"), "--target-mean must be a positive number"),
        (("--exposure", "inf"), "--exposure must be a positive number"),
        (("-t", "realworld", "--dark-noise", "nan"), "--dark-noise must be a number >= 0"),
        (("-t", "realworld", "--npe", "inf"), "--npe must be a positive number"),
        (("--gamma", "foo"), "--gamma must be a number or 'srgb'"),
        (("-t", "realworld", "--no-noise", "--npe", "100"), "--npe sets the noise that --no-noise switches off"),
        (("-t", "realworld", "--no-noise", "--prnu", "0.01"), "--prnu acts only with sensor noise: drop --no-noise"),
        (("--brightness", "-1"), "--brightness must be a positive number"),
        (("--read-noise", "5"), "--read-noise acts only with sensor noise"),
        (("--prnu", "0.1", "--read-noise", "1"), "--read-noise, --prnu act only with sensor noise"),
        (("--demosaic", "vng"), "--demosaic acts on a Bayer mosaic; this pipeline has none"),
        (("-t", "realworld", "--pattern", "none", "--demosaic", "vng"), "--demosaic acts on a Bayer mosaic"),
        (("--jpeg-quality", "90"), "--jpeg-quality acts on JPEG output"),
        (("-t", "realworld", "--png-compression", "9"), "--png-compression acts on PNG output"),
        (("-t", "ntire2022", "--brightness", "0.5"), "--brightness is undone by the pipeline's automatic exposure"),
        (("--format", "npz"), "--format is the format of the cube --shuffle or --brightness writes"),
        (("--in-format", "foo"), "unknown format 'foo'"),
        (("--format", "tif"), "--format must be one of mat, envi, npy, npz, mat5, not 'tif'"),
    ):
        res = hstool("simulate", src, out, *args)
        assert res.exit_code == 1 and message in res.stderr, (args, res.stderr)
        assert res.stderr.count("error:") == 1  # once, not once per file
    assert not out.exists() or not any(out.iterdir())
    assert hstool("simulate", src, out, "--seed", "-1").exit_code == 2  # typer's own range check
    res = hstool("simulate", src, out, "--list-css")
    assert res.exit_code == 1 and "--list-css and --plot-css take no cubes" in res.stderr


def test_prnu_pattern_follows_the_seed(tmp_path, hstool):
    """The CLI's PRNU pattern is drawn from --seed: its image equals the library's with
    prnu_seed = seed, and another prnu_seed (same shot noise) gives another image."""
    src = cubes(tmp_path / "in", n=1)
    cube = read_cube(src / "ARAD_HS_0451.mat")
    noise = file_seed(2, "ARAD_HS_0451").spawn(2)[0]
    res = hstool("simulate", src, tmp_path / "out", "-t", "realworld", "--prnu", "0.05", "--encoding", "png",
                 "--seed", "2")
    assert res.exit_code == 0, res.stderr
    got = read_rgb(tmp_path / "out" / "ARAD_HS_0451_RealWorld.png")
    expect = {s: simulate(cube, track("realworld", prnu=0.05, prnu_seed=s, encoding="png"), np.random.default_rng(noise))
              for s in (2, 3)}
    np.testing.assert_array_equal(got, expect[2])
    assert not np.array_equal(expect[2], expect[3])


def test_a_file_error_without_a_path_names_the_file(tmp_path, hstool):
    src = cubes(tmp_path / "in", n=1)
    write_cube(make_cube(1, 5, seed=3), src / "tiny.mat")
    res = hstool("simulate", src, tmp_path / "out", "-t", "realworld")
    assert res.exit_code == 1
    assert f"error: {src / 'tiny.mat'}: a Bayer mosaic needs at least 2x2 pixels" in res.stderr
    assert "1 of 2 failed; the others were written." in res.stderr
    res = hstool("simulate", src / "tiny.mat", tmp_path / "out", "-t", "realworld")
    assert "1 of 1 failed." in res.stderr


def test_batch_errors_without_a_path_take_the_items_name():
    from hstool.cli.batch import _describe
    from hstool.hsdata import HsError

    assert _describe(HsError("bad value"), "a.mat", False) == "a.mat: bad value"
    assert _describe(HsError("bad value", "/x/b.mat"), "a.mat", False) == "/x/b.mat: bad value"
    assert _describe(ValueError("lam value\n too large"), "a.mat", False) == "a.mat: ValueError: lam value too large"
    try:
        raise ValueError("boom")
    except ValueError as exc:
        assert "Traceback" in _describe(exc, "a.mat", True)


def test_clipped_pixels_are_counted_and_a_cube_too_bright_is_warned_of(tmp_path, hstool):
    cube = make_cube(20, 24)
    write_cube(cube.with_data(cube.data * 3), tmp_path / "in" / "bright.mat")
    write_cube(cube, tmp_path / "in" / "plain.mat")
    r = hstool("simulate", tmp_path / "in", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    rows = {Path(row["input"]).stem: row for row in json.loads(r.stdout)["written"]}
    for stem in ("bright", "plain"):
        codes = np.round(read_rgb(tmp_path / "out" / f"{stem}_clean.png") * 255)
        assert rows[stem]["clipped"] == pytest.approx(np.mean(np.any(codes == 255, axis=-1)), abs=1e-6)
    assert rows["bright"]["clipped"] > 0.01 and rows["plain"]["clipped"] < 0.01
    assert "1 image(s) clipped on more than 1% of their pixels" in r.stderr and "bright_clean.png" in r.stderr
