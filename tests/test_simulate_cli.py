"""``hstool simulate`` through the CLI: names, batches with a bad file, seeds, transforms."""

from __future__ import annotations

import json

import numpy as np
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


def test_list_and_plot_css(tmp_path, hstool):
    res = hstool("simulate", "--list-css", "--json")
    assert res.exit_code == 0
    assert [r["name"] for r in json.loads(res.stdout)] == ["cie1964", "d40", "cie1931", "nikon5100",
                                                           "sigma_sd_merrill"]
    res = hstool("simulate", "--plot-css", "d40", tmp_path / "d40.png")
    assert res.exit_code == 0 and (tmp_path / "d40.png").read_bytes()[:4] == b"\x89PNG"
    res = hstool("simulate", tmp_path)
    assert res.exit_code == 1 and "CUBES... OUT" in res.stderr
