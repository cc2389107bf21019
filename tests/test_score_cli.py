"""``hstool score`` through the CLI on real files: pairing, values, CSV/JSON, maps and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hstool.hsdata import Cube, read_rgb, write_cube


def cube_pair(tmp_cube, seed=0, size=(20, 24), gain=1.05):
    gt = tmp_cube(*size, seed=seed)
    noise = np.random.default_rng(seed).normal(0, 0.02, gt.shape)
    pred = gt.with_data((gt.data * gain * (1 + noise)).astype(np.float32))
    return pred, gt


@pytest.fixture
def folders(tmp_path, tmp_cube):
    """gt/: a.mat, b.mat, c.npy (no prediction); pred/: a.npy, b.npz, d.npy (no ground truth)."""
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    cubes = {}
    for i, (stem, pfmt, gfmt) in enumerate([("a", "npy", "mat"), ("b", "npz", "mat")]):
        pred, gt = cube_pair(tmp_cube, seed=i)
        write_cube(pred, tmp_path / "pred" / f"{stem}.{pfmt}")
        write_cube(gt, tmp_path / "gt" / f"{stem}.{gfmt}")
        cubes[stem] = (pred.data.astype(np.float64), gt.data.astype(np.float64))
    write_cube(tmp_cube(8, 8), tmp_path / "gt" / "c.npy")
    write_cube(tmp_cube(8, 8), tmp_path / "pred" / "d.npy")
    return tmp_path, cubes


def test_pairs_by_stem_across_formats_and_matches_hand_values(hstool, folders):
    root, cubes = folders
    result = hstool("score", root / "pred", root / "gt", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["image"] for r in out["images"]] == ["a", "b"]
    assert [p.rsplit("/", 1)[-1] for p in out["unpaired"]["pred"]] == ["d.npy"]
    assert [p.rsplit("/", 1)[-1] for p in out["unpaired"]["gt"]] == ["c.npy"]
    assert (
        "1 unpaired predictions: d.npy" in result.stderr
        and "1 unpaired ground truths: c.npy" in result.stderr
    )
    for row in out["images"]:
        p, g = cubes[row["image"]]
        assert row["mrae"] == pytest.approx(np.mean(np.abs(g - p) / g), rel=1e-6)
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((g - p) ** 2)), rel=1e-6)
        assert row["psnr"] == pytest.approx(-10 * np.log10(np.mean((g - p) ** 2)), rel=1e-6)
    assert out["mean"]["mrae"] == pytest.approx(np.mean([r["mrae"] for r in out["images"]]))
    # the human table goes to stdout with a mean row, and nothing else: the notes go to stderr
    table = hstool("score", root / "pred", root / "gt")
    assert table.exit_code == 0 and "mean" in table.stdout and "MRAE" in table.stdout
    assert "unpaired" not in table.stdout and "unpaired" in table.stderr and "MRAE" not in table.stderr


def test_all_metrics_crop_and_csv(hstool, folders, tmp_path):
    root, cubes = folders
    target = tmp_path / "scores.csv"
    args = [
        "score",
        root / "pred" / "a.npy",
        root / "gt" / "a.mat",
        "-m",
        "mrae,sam,ssim,weighted",
        "--crop",
        "3",
    ]
    result = hstool(*args, "--csv", target)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(target.open()))
    assert [r["image"] for r in rows] == ["a", "mean"]
    p, g = (c[3:-3, 3:-3] for c in cubes["a"])
    assert float(rows[0]["mrae"]) == pytest.approx(np.mean(np.abs(g - p) / g), rel=1e-6)
    cos = np.sum(p * g, -1) / np.linalg.norm(p, axis=-1) / np.linalg.norm(g, axis=-1)
    assert float(rows[0]["sam"]) == pytest.approx(np.mean(np.arccos(np.clip(cos, -1, 1))), rel=1e-5)
    assert 0.5 < float(rows[0]["ssim"]) < 1.0
    # 14x18 pixels after the crop < 1000 clusters: each spectrum is its own cluster, weighted == plain MRAE
    assert float(rows[0]["weighted"]) == pytest.approx(float(rows[0]["mrae"]), rel=1e-6)
    target.write_text("mine")
    again = hstool(*args, "--csv", target, "--json")  # exists: kept without --overwrite, still scored
    assert again.exit_code == 0 and "exists and is kept" in again.stderr and target.read_text() == "mine"
    assert json.loads(again.stdout)["images"][0]["image"] == "a"
    assert hstool(*args, "--csv", target, "--overwrite").exit_code == 0 and target.read_text() != "mine"


def test_rgb_consistency_track_and_maps(hstool, tmp_path, tmp_cube):
    from hstool.camera import simulate_to_file, track
    from hstool.recon import evaluate, metrics

    pred, gt = cube_pair(tmp_cube, seed=3)
    for d in ("pred", "gt", "rgb"):
        (tmp_path / d).mkdir()
    write_cube(pred, tmp_path / "pred" / "ARAD_HS_0451.npy")
    write_cube(gt, tmp_path / "gt" / "ARAD_HS_0451.mat")
    simulate_to_file(gt, tmp_path / "rgb" / "ARAD_HS_0451_clean.png", "clean")
    result = hstool(
        "score",
        tmp_path / "pred",
        tmp_path / "gt",
        "--rgb",
        tmp_path / "rgb",
        "--track",
        "clean",
        "--maps",
        tmp_path / "maps",
        "--json",
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["images"][0]
    matrix = track("clean").matrix(gt.wavelengths)
    rgb = read_rgb(tmp_path / "rgb" / "ARAD_HS_0451_clean.png")
    assert row["physical"] == pytest.approx(evaluate.physical_consistency(pred, rgb, "clean"), rel=1e-6)
    assert row["physical_linear"] == pytest.approx(metrics.rgb_consistency(pred.data, rgb, matrix), rel=1e-6)
    assert row["backprojection"] == pytest.approx(
        metrics.backprojection_mrae(pred.data, gt.data, matrix), rel=1e-6
    )
    assert row["physical"] > 0.02  # pred is 5% too bright, so its RGB is too
    maps = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert maps == ["ARAD_HS_0451_mrae.png", "ARAD_HS_0451_worst.png"]
    assert read_rgb(tmp_path / "maps" / maps[0]).shape[1] > 300
    # the ground truth re-generates its own clean image exactly; the linear projection only up to 8 bits
    write_cube(gt, tmp_path / "pred" / "ARAD_HS_0451.npy", overwrite=True)
    again = hstool("score", tmp_path / "pred", tmp_path / "gt", "--rgb", tmp_path / "rgb", "--json")
    row = json.loads(again.stdout)["images"][0]
    assert row["physical"] == 0.0 and row["backprojection"] == 0.0 and 0 < row["physical_linear"] < 0.02
    # --eps guards every MRAE, the physical ones too (they left zeros out by default: one guard each)
    guarded = hstool("score", tmp_path / "pred", tmp_path / "gt", "--rgb", tmp_path / "rgb", "--eps", "1e-3", "--json")
    assert guarded.exit_code == 0, guarded.output
    row = json.loads(guarded.stdout)["images"][0]
    assert row["physical_linear"] == pytest.approx(metrics.rgb_consistency(gt.data, rgb, matrix, eps=1e-3), rel=1e-6)


def test_zeros_in_ground_truth_give_inf_with_a_hint(hstool, tmp_path, tmp_cube):
    pred, gt = cube_pair(tmp_cube)
    data = gt.data.copy()
    data[0, 0, :4] = 0
    write_cube(gt.with_data(data), tmp_path / "gt.npy")
    write_cube(pred, tmp_path / "pred.npy")
    result = hstool("score", tmp_path / "pred.npy", tmp_path / "gt.npy", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["images"][0]["mrae"] == "inf"
    assert "gt: MRAE is inf: the ground truth has 4 zero values" in result.stderr
    assert "[yellow]" not in result.stderr and "[/]" not in result.stderr  # styled, not printed as tags
    guarded = hstool("score", tmp_path / "pred.npy", tmp_path / "gt.npy", "--json", "--ignore-zeros")
    assert 0 < json.loads(guarded.stdout)["images"][0]["mrae"] < 1


def test_bad_input_one_clear_line(hstool, tmp_path, tmp_cube):
    (tmp_path / "empty").mkdir()
    pred, gt = cube_pair(tmp_cube)
    write_cube(gt, tmp_path / "gt.npy")
    write_cube(pred, tmp_path / "other.npy")

    def fails(*args, match):
        result = hstool("score", *args)
        assert result.exit_code == 1, result.output
        assert match in result.stderr and "Traceback" not in result.output
        return result

    fails(tmp_path / "empty", tmp_path / "gt.npy", match="folder holds no")
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    write_cube(pred, tmp_path / "p" / "x.npy")
    write_cube(pred, tmp_path / "p" / "x2.npy")
    write_cube(gt, tmp_path / "g" / "y.npy")
    fails(tmp_path / "p", tmp_path / "g", match="no pairs")
    write_cube(Cube(pred.data[:10], pred.wavelengths), tmp_path / "small.npy")
    fails(tmp_path / "small.npy", tmp_path / "gt.npy", match="shape mismatch")
    write_cube(Cube(pred.data[..., :30], pred.wavelengths[:30]), tmp_path / "bands.npz")
    fails(tmp_path / "bands.npz", tmp_path / "gt.npy", match="band mismatch: prediction has 30 bands")
    nan = pred.data.copy()
    nan[1, 2, 3] = np.nan
    write_cube(pred.with_data(nan), tmp_path / "nan.npy")
    r = fails(tmp_path / "nan.npy", tmp_path / "gt.npy", match="prediction contains 1 NaN")
    assert "nan.npy" in r.stderr
    fails(tmp_path / "other.npy", tmp_path / "gt.npy", "-m", "mrae,psnrr", match="unknown metric(s) psnrr")
    fails(tmp_path / "other.npy", tmp_path / "gt.npy", "--crop", "12", match="leaves nothing")
    fails(tmp_path / "other.npy", tmp_path / "gt.npy", "--eps", "-1", match="--eps must be a number >= 0")
    # NaN in the ground truth names the ground-truth file
    write_cube(gt.with_data(nan), tmp_path / "gtnan.npy")
    r = fails(tmp_path / "other.npy", tmp_path / "gtnan.npy", match="gtnan.npy: ground truth contains 1 NaN")
    # the same band count on another grid is not the same bands
    write_cube(Cube(pred.data, pred.wavelengths + 5), tmp_path / "shifted.npz")
    fails(tmp_path / "shifted.npz", tmp_path / "gt.npy", match="band grids differ: prediction 405-705 nm")


def test_a_missing_rgb_fails_its_pair_only_and_maps_are_kept_on_a_rerun(hstool, tmp_path, tmp_cube):
    from hstool.camera import simulate_to_file

    for d in ("pred", "gt", "rgb"):
        (tmp_path / d).mkdir()
    for stem, seed in (("A", 1), ("B", 2)):
        pred, gt = cube_pair(tmp_cube, seed=seed)
        write_cube(pred, tmp_path / "pred" / f"{stem}.npy")
        write_cube(gt, tmp_path / "gt" / f"{stem}.mat")
    simulate_to_file(gt, tmp_path / "rgb" / "B_clean.png", "clean")  # none for A
    args = ("score", tmp_path / "pred", tmp_path / "gt", "--rgb", tmp_path / "rgb", "--maps", tmp_path / "maps",
            "--json")
    r = hstool(*args)
    assert r.exit_code == 1 and "no input RGB image named A*" in r.stderr
    report = json.loads(r.stdout)
    assert [row["image"] for row in report["images"]] == ["B"] and len(report["failed"]) == 1
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["B_mrae.png", "B_worst.png"]
    mtime = (tmp_path / "maps" / "B_mrae.png").stat().st_mtime_ns
    simulate_to_file(tmp_cube(20, 24, seed=1), tmp_path / "rgb" / "A_clean.png", "clean")
    r = hstool(*args)  # scores both; B's maps exist and are kept, A's are written
    assert r.exit_code == 0, r.output
    assert "error maps of 1 image(s) exist and are kept" in r.stderr
    assert [row["image"] for row in json.loads(r.stdout)["images"]] == ["A", "B"]
    assert (tmp_path / "maps" / "B_mrae.png").stat().st_mtime_ns == mtime
    assert (tmp_path / "maps" / "A_mrae.png").exists()


def negative_gt(tmp_cube, seed=0):
    """A pair whose ground truth holds 3 small negative values (calibration noise)."""
    pred, gt = cube_pair(tmp_cube, seed=seed, size=(8, 10))
    data = gt.data.copy()
    data[0, 0, :2] = -0.01
    data[4, 5, 7] = -0.004
    return pred, gt.with_data(data)


def test_negative_ground_truth_is_refused_naming_the_file_or_clipped_on_request(hstool, tmp_path, tmp_cube):
    pred, gt = negative_gt(tmp_cube)
    write_cube(pred, tmp_path / "pred.npy")
    write_cube(gt, tmp_path / "gt.npy")
    r = hstool("score", tmp_path / "pred.npy", tmp_path / "gt.npy")
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = [line for line in r.stderr.splitlines() if "negative" in line]
    assert len(lines) == 1, r.stderr
    assert f"{tmp_path / 'gt.npy'}: ground truth has 3 negative values (min -0.01)" in lines[0]
    assert "--clip-negative" in lines[0] and "(--eps, --ignore-zeros)" in lines[0]
    # RMSE, PSNR, SAM, SSIM are defined with negatives: scored on the cube as it is
    r = hstool("score", tmp_path / "pred.npy", tmp_path / "gt.npy", "-m", "rmse,psnr,sam,ssim", "--json")
    assert r.exit_code == 0, r.output
    p, g = pred.data.astype(np.float64), gt.data.astype(np.float64)
    rmse = json.loads(r.stdout)["images"][0]["rmse"]
    assert rmse == pytest.approx(np.sqrt(np.mean((g - p) ** 2)), rel=1e-6)
    # --clip-negative: the ground truth is clipped to 0, and those zeros take the --eps guard
    args = ("score", tmp_path / "pred.npy", tmp_path / "gt.npy", "--clip-negative", "--json")
    r = hstool(*args, "--eps", "1e-3")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["images"][0]
    clipped = np.clip(g, 0, None)
    assert row["mrae"] == pytest.approx(np.mean(np.abs(clipped - p) / (clipped + 1e-3)), rel=1e-6)
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((clipped - p) ** 2)), rel=1e-6)
    assert row["gt_zeros"] == 3
    # without a guard the clipped zeros give the organisers' inf, with the usual hint
    r = hstool(*args)
    assert r.exit_code == 0 and json.loads(r.stdout)["images"][0]["mrae"] == "inf"
    assert "3 zero values" in r.stderr


def test_negative_ground_truth_fails_its_pair_only(hstool, tmp_path, tmp_cube):
    for d in ("pred", "gt"):
        (tmp_path / d).mkdir()
    pred, gt = negative_gt(tmp_cube, seed=1)
    write_cube(pred, tmp_path / "pred" / "A.npy")
    write_cube(gt, tmp_path / "gt" / "A.mat")
    pred, gt = cube_pair(tmp_cube, seed=2, size=(8, 10))
    write_cube(pred, tmp_path / "pred" / "B.npy")
    write_cube(gt, tmp_path / "gt" / "B.mat")
    for workers in ("1", "2"):
        r = hstool("score", tmp_path / "pred", tmp_path / "gt", "-m", "mrae,weighted", "--workers", workers,
                   "--json")
        assert r.exit_code == 1 and "Traceback" not in r.output
        assert f"{tmp_path / 'gt' / 'A.mat'}: ground truth has 3 negative values" in r.stderr
        report = json.loads(r.stdout)
        assert [row["image"] for row in report["images"]] == ["B"]
        assert len(report["failed"]) == 1
        assert "A.mat: ground truth has 3 negative values" in report["failed"][0]["error"]
        p, g = pred.data.astype(np.float64), gt.data.astype(np.float64)
        assert report["images"][0]["mrae"] == pytest.approx(np.mean(np.abs(g - p) / g), rel=1e-6)


def test_tables_in_a_log_keep_long_names_on_one_line(tmp_path, tmp_cube):
    """Off a terminal (a pipe, a CI log) rich would fold cells at 80 columns; a table keeps its width."""
    import os
    import subprocess
    import sys

    name = "ARAD_HS_0451_a_rather_long_scene_name_from_a_campaign"
    pred, gt = cube_pair(tmp_cube)
    write_cube(pred, tmp_path / "pred" / f"{name}.npy")
    write_cube(gt, tmp_path / "gt" / f"{name}.mat")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([sys.executable, "-m", "hstool.cli", "score", tmp_path / "pred", tmp_path / "gt",
                           "-m", "mrae,rmse,psnr,sam,ssim,weighted"], capture_output=True, text=True, env=env,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = [line for line in proc.stdout.splitlines() if name in line and line.startswith("│")]
    assert len(row) == 1 and len(row[0]) > 80, proc.stdout
    mrae = float(np.mean(np.abs(gt.data.astype(np.float64) - pred.data) / gt.data))
    assert f"{mrae:.4f}" in row[0]
    # COLUMNS still rules: the table folds to fit it
    proc = subprocess.run([sys.executable, "-m", "hstool.cli", "score", tmp_path / "pred", tmp_path / "gt",
                           "-m", "mrae,rmse,psnr,sam,ssim,weighted"], capture_output=True, text=True,
                          env={**env, "COLUMNS": "90"}, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and max(map(len, table)) <= 90 and not any(name in line for line in table), proc.stdout


def test_outputs_that_cannot_be_written_fail_before_the_scoring(hstool, folders, tmp_path):
    root, _ = folders
    (tmp_path / "file").write_text("not a folder")
    for extra, message in ((["--csv", tmp_path / "file" / "x.csv"], "output folder is not a directory"),
                           (["--maps", tmp_path / "file" / "maps"], "cannot write here")):
        r = hstool("score", root / "pred", root / "gt", "-m", "rmse", *extra)
        assert r.exit_code == 1 and message in r.output, r.output
        assert "score ━" not in r.output  # refused before any pair was scored


def test_eps_and_ignore_zeros_together_are_refused_before_scoring(hstool, folders):
    root, _ = folders
    r = hstool("score", root / "pred", root / "gt", "--eps", "1e-3", "--ignore-zeros")
    assert r.exit_code == 1 and "--eps, --ignore-zeros) are two guards" in r.output and "score ━" not in r.output


def test_seed_reaches_the_weighted_mrae_clusters(hstool, folders):
    """The k-means of the weighted MRAE is a random step: --seed sets it, and one seed gives one answer."""
    from hstool.camera import capture_seeds, file_seed
    from hstool.recon import clusters

    root, cubes = folders

    def weighted(seed):
        r = hstool("score", root / "pred", root / "gt", "-m", "weighted", "--clusters", "5", "--seed", seed, "--json")
        assert r.exit_code == 0, r.output
        return {row["image"]: row["weighted"] for row in json.loads(r.stdout)["images"]}

    first, again, other = weighted("0"), weighted("0"), weighted("9")
    assert first == again and first != other
    pred, gt = cubes["a"]
    expected = clusters.weighted_mrae(pred, gt, 5, capture_seeds(file_seed(9, "a"))[3])
    assert other["a"] == pytest.approx(expected, rel=1e-6)
    # the organisers' k-means on request, and the settings the scores depend on in --json
    pytest.importorskip("sklearn")
    r = hstool("score", root / "pred", root / "gt", "-m", "weighted", "--clusters", "5", "--seed", "9",
               "--clustering", "organisers", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    expected = clusters.weighted_mrae(pred, gt, 5, capture_seeds(file_seed(9, "a"))[3], method="organisers")
    assert report["images"][0]["weighted"] == pytest.approx(expected, rel=1e-6)
    assert report["settings"]["clustering"] == "organisers" and report["settings"]["seed"] == 9
    r = hstool("score", root / "pred", root / "gt", "--clustering", "faiss")
    assert r.exit_code == 1 and "--clustering must be hstool or organisers, not 'faiss'" in r.stderr


def test_the_shuffle_test_scores_by_stem_through_the_cli(hstool, tmp_path, tmp_cube):
    """simulate --shuffle writes X_clean.png and its permuted cube X_clean.mat; recon names its cube
    X: score pairs X with X_clean (a track suffix dropped once exact stems are paired)."""
    for i in range(2):
        write_cube(tmp_cube(16, 20, seed=i), tmp_path / "gt" / f"S{i}.mat")
    r = hstool("simulate", tmp_path / "gt", tmp_path / "sh", "--shuffle", "4")
    assert r.exit_code == 0, r.output
    r = hstool("recon", tmp_path / "sh", "--model", "linear", "--out", tmp_path / "rec")
    assert r.exit_code == 0, r.output
    r = hstool("score", tmp_path / "rec", tmp_path / "sh", "-m", "mrae", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert [(Path(row["pred"]).name, Path(row["gt"]).name) for row in report["images"]] == [
        ("S0.mat", "S0_clean.mat"), ("S1.mat", "S1_clean.mat")]
    assert report["unpaired"] == {"pred": [], "gt": []}


def test_per_band_errors_in_json_csv_and_a_plot(hstool, folders, tmp_path):
    root, cubes = folders
    r = hstool("score", root / "pred", root / "gt", "-m", "mrae,rmse", "--per-band", "--maps", tmp_path / "maps",
               "--csv", tmp_path / "s.csv", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    for row in report["images"]:
        pred, gt = cubes[row["image"]]
        band = row["per_band"]
        np.testing.assert_allclose(band["mrae"], np.mean(np.abs(gt - pred) / gt, axis=(0, 1)), rtol=1e-5)
        np.testing.assert_allclose(band["rmse"], np.sqrt(np.mean((gt - pred) ** 2, axis=(0, 1))), rtol=1e-5)
        assert np.mean(band["mrae"]) == pytest.approx(row["mrae"], rel=1e-6)  # every band has each pixel once
        assert band["wavelengths"] == list(range(400, 701, 10))
    mean = report["mean_per_band"]
    np.testing.assert_allclose(mean["mrae"], np.mean([r["per_band"]["mrae"] for r in report["images"]], axis=0))
    assert (tmp_path / "maps" / "per_band.png").read_bytes()[:4] == b"\x89PNG"
    assert report["per_band_plot"] == str(tmp_path / "maps" / "per_band.png")
    with open(tmp_path / "s.csv") as fh:
        table = list(csv.DictReader(fh))
    assert float(table[0]["mrae_400nm"]) == pytest.approx(report["images"][0]["per_band"]["mrae"][0])
    assert float(table[-1]["rmse_700nm"]) == pytest.approx(mean["rmse"][-1])
    r = hstool("score", root / "pred", root / "gt", "--per-band")
    assert r.exit_code == 0 and "per band, mean of 2 image(s)" in r.stdout and "│ 550 " in r.stdout


def test_strict_fails_a_run_with_unpaired_files(hstool, folders):
    """folders: c.npy has no prediction and d.npy no ground truth: a note by default, a failure
    with --strict (the pairs are still scored and reported)."""
    root, _ = folders
    r = hstool("score", root / "pred", root / "gt", "--json")
    assert r.exit_code == 0 and "1 unpaired predictions" in r.stderr
    r = hstool("score", root / "pred", root / "gt", "--strict", "--json")
    assert r.exit_code == 1 and "--strict: 1 prediction(s) and 1 ground truth(s) have no partner" in r.stderr
    assert [row["image"] for row in json.loads(r.stdout)["images"]] == ["a", "b"]


def test_folders_of_one_file_each_pair_by_name_and_two_named_files_pair_as_given(hstool, tmp_path, tmp_cube):
    """A folder's lone X.npy is not scored against another folder's lone Y.npy (a wrong pair
    --strict let through); the same two files named on the command line are the pair asked for."""
    cube = tmp_cube(6, 8)
    write_cube(cube, tmp_path / "pred" / "X.npy")
    write_cube(cube.with_data(cube.data * 1.5), tmp_path / "gt" / "Y.npy")
    r = hstool("score", tmp_path / "pred", tmp_path / "gt", "--strict")
    assert r.exit_code == 1 and "no pairs: no file stem in" in " ".join(r.stderr.split())
    r = hstool("score", tmp_path / "pred" / "X.npy", tmp_path / "gt" / "Y.npy", "-m", "mrae", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["images"][0]["mrae"] == pytest.approx(1 / 3, rel=1e-6)


def test_physical_consistency_re_images_at_the_inputs_bit_depth(hstool, tmp_path, tmp_cube):
    """A 16-bit input (simulate --bits 16) is re-imaged in 16 bits: a consistent reconstruction
    scores 0 there, as an 8-bit one does on 8-bit input (it scored the 8-bit rounding before)."""
    write_cube(tmp_cube(16, 20, seed=3), tmp_path / "gt" / "A.mat")
    assert hstool("simulate", tmp_path / "gt", tmp_path / "rgb", "--bits", "16").exit_code == 0
    r = hstool("recon", tmp_path / "rgb", "--model", "rootpoly", "--consistent", "--out", tmp_path / "rec")
    assert r.exit_code == 0, r.output
    r = hstool("score", tmp_path / "rec", tmp_path / "gt", "--rgb", tmp_path / "rgb", "-t", "clean", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["images"][0]["physical"] == 0.0


def test_a_prediction_two_tracks_could_claim_is_named_ambiguous(hstool, tmp_path, tmp_cube):
    pred, gt = cube_pair(tmp_cube, size=(6, 8))
    write_cube(pred, tmp_path / "p" / "X.npz")
    for name in ("X_clean.npz", "X_RealWorld.npz"):
        write_cube(gt, tmp_path / "g" / name)
    r = hstool("score", tmp_path / "p", tmp_path / "g")
    assert r.exit_code == 1
    assert "no pairs: X.npz could pair with X_RealWorld.npz or X_clean.npz: ambiguous" in r.stderr
    r = hstool("score", tmp_path / "g", tmp_path / "p")  # the other way round: two predictions, one truth
    assert r.exit_code == 1 and "X.npz could pair with X_RealWorld.npz or X_clean.npz: ambiguous" in r.stderr
    r = hstool("info", tmp_path / "nothing.mat", "--json")  # one unreadable file: still JSON on stdout
    assert r.exit_code == 1 and json.loads(r.stdout) == {"path": str(tmp_path / "nothing.mat"),
                                                         "error": f"{tmp_path / 'nothing.mat'}: no such file"}


def test_per_band_csv_keeps_each_images_bands_on_mixed_grids(hstool, tmp_path, tmp_cube):
    """Pairs on 31 and 16 bands: each image's own columns filled, the others blank, no mean."""
    for stem, wl in (("a", np.arange(400.0, 701.0, 10.0)), ("b", np.linspace(400, 700, 16))):
        pred, gt = cube_pair(tmp_cube, size=(6, 8))
        write_cube(gt.with_data(gt.data[..., : wl.size], wavelengths=wl), tmp_path / "g" / f"{stem}.npz")
        write_cube(pred.with_data(pred.data[..., : wl.size], wavelengths=wl), tmp_path / "p" / f"{stem}.npz")
    r = hstool("score", tmp_path / "p", tmp_path / "g", "-m", "mrae", "--per-band", "--csv", tmp_path / "s.csv")
    assert r.exit_code == 0 and "different band grids" in r.stderr
    with open(tmp_path / "s.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["mrae_410nm"] != "" and rows[1]["mrae_410nm"] == ""  # b has no 410 nm band
    assert rows[0]["mrae_420nm"] != "" and rows[1]["mrae_420nm"] != ""  # both have 420 nm
    assert rows[2]["image"] == "mean" and rows[2]["mrae_420nm"] == ""


def test_error_maps_of_a_cropped_score_name_pixels_where_they_are_in_the_image(hstool, tmp_path, tmp_cube, monkeypatch):
    """With --crop 4 the worst pixel at x=12, y=10 is labelled so (it read x=8, y=6, a pixel of the
    cropped frame), and the titles say the border was left out."""
    import matplotlib.axes

    gt = tmp_cube(20, 24)
    data = gt.data.copy()
    data[10, 12] *= 3
    write_cube(gt, tmp_path / "gt" / "A.npy")
    write_cube(gt.with_data(data), tmp_path / "pred" / "A.npy")
    said = []
    plot, title = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda ax, *a, **k: said.append(k.get("label")) or plot(ax, *a, **k))
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda ax, t, *a, **k: said.append(t) or title(ax, t, *a, **k))
    r = hstool("score", tmp_path / "pred", tmp_path / "gt", "--crop", "4", "--maps", tmp_path / "maps")
    assert r.exit_code == 0, r.output
    assert "x=12, y=10 ground truth, MRAE 2" in said
    assert sum("4 px border left out" in str(s) for s in said) == 2
