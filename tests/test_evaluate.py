"""The Table 3 protocol (``recon.evaluate``) with a reference reconstruction, and ``hstool evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hstool.camera import capture_seeds, simulate, track
from hstool.hsdata import Cube, HsError, read_cube, read_rgb, write_cube
from hstool.recon import clusters, evaluate, metrics


def linear_fn(cube: Cube, pipeline="clean"):
    """Reference reconstruction: the least-squares linear map RGB -> spectrum fitted on the cube itself."""
    rgb = simulate(cube, pipeline, 0).reshape(-1, 3).astype(np.float64)
    w = np.linalg.lstsq(rgb, cube.data.reshape(-1, cube.bands).astype(np.float64), rcond=None)[0]

    def recon(image: np.ndarray) -> np.ndarray:
        return (image.astype(np.float64) @ w).astype(np.float32)

    recon.w = w
    return recon


def test_clean_protocol_matches_hand_computation(tmp_cube):
    cube = tmp_cube(28, 36, seed=1)
    fn = linear_fn(cube)
    row = evaluate.evaluate_cube(cube, fn, "clean", seed=5, clusters=100)
    gt = cube.data
    pred = fn(simulate(cube, "clean"))  # the clean track is noise-free: no seed needed
    assert row["mrae"] == pytest.approx(np.mean(np.abs(gt - pred) / gt), rel=1e-6)
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((gt.astype(np.float64) - pred) ** 2)), rel=1e-6)
    for k in (0.5, 2):
        scaled = gt * np.float32(k)
        p = fn(simulate(Cube(scaled, cube.wavelengths), "clean"))
        assert row[f"brightness_{k:g}"] == pytest.approx(np.mean(np.abs(scaled - p) / scaled), rel=1e-5)
    # a pixel-wise map is blind to where a pixel is: shuffling 4x4 patches moves the errors, not their mean
    assert row["spatial"] == pytest.approx(row["mrae"], rel=1e-6)
    matrix = track("clean").matrix(cube.wavelengths)
    assert row["backprojection"] == pytest.approx(metrics.backprojection_mrae(pred, gt, matrix), rel=1e-6)
    cluster_seed = capture_seeds(np.random.SeedSequence(5))[3]  # the seed's fourth child seeds the k-means
    assert row["weighted"] == pytest.approx(clusters.weighted_mrae(pred, gt, 100, cluster_seed), rel=1e-6)
    regen = simulate(Cube(np.clip(pred, 0, None), cube.wavelengths), "clean")
    rgb = simulate(cube, "clean")
    keep = rgb != 0
    assert row["physical"] == pytest.approx(np.mean(np.abs(regen - rgb)[keep] / rgb[keep]), rel=1e-6)
    assert row["gt_zeros"] == 0
    assert 0 < row["mrae"] < 0.2 and row["brightness_2"] != row["mrae"]


def test_spatial_shuffle_hurts_a_spatial_method(tmp_cube):
    cube = tmp_cube(32, 32, seed=2)
    fn = linear_fn(cube)

    def blurred(image):  # uses the neighbourhood: a shuffled image breaks it
        from scipy import ndimage

        return fn(ndimage.uniform_filter(image, (5, 5, 1), mode="nearest"))

    row = evaluate.evaluate_cube(cube, blurred, "clean", clusters=50)
    assert row["spatial"] > 1.5 * row["mrae"]


def test_realworld_noise_seeded_like_hstool_simulate(hstool, tmp_path, tmp_cube):
    cube = tmp_cube(24, 32, seed=3)
    path = tmp_path / "ARAD_HS_0007.npy"
    write_cube(cube, path)
    fn = linear_fn(cube, "realworld")
    a = evaluate.evaluate_file(path, fn, "realworld", seed=3, clusters=50)
    assert a == evaluate.evaluate_file(path, fn, "realworld", seed=3, clusters=50)
    assert a["mrae"] != evaluate.evaluate_file(path, fn, "realworld", seed=4, clusters=50)["mrae"]
    # the main input is the very image `hstool simulate --seed 3` writes
    result = hstool("simulate", path, tmp_path / "rgb", "--track", "realworld", "--seed", "3")
    assert result.exit_code == 0, result.output
    pred = fn(read_rgb(tmp_path / "rgb" / "ARAD_HS_0007_RealWorld.jpg"))
    assert a["mrae"] == pytest.approx(metrics.mrae(pred, cube.data), rel=1e-6)
    assert a["physical"] > 0  # fresh noise: never exactly consistent
    # and `hstool score --rgb` on that image and reconstruction re-simulates with the same noise
    write_cube(cube.with_data(pred), tmp_path / "pred" / "ARAD_HS_0007.npy")
    result = hstool("score", tmp_path / "pred", path, "--rgb", tmp_path / "rgb", "--track", "realworld",
                    "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"][0]["physical"] == pytest.approx(a["physical"], rel=1e-6)


def test_bad_reconstructions_are_named(tmp_cube):
    cube = tmp_cube(16, 16)
    with pytest.raises(HsError, match="main test: band mismatch: reconstruction has 30 bands"):
        evaluate.evaluate_cube(cube, lambda rgb: np.zeros((16, 16, 30), np.float32))

    def nan_fn(rgb):
        out = np.ones((16, 16, 31), np.float32)
        out[3, 3, 3] = np.nan
        return out

    with pytest.raises(HsError, match="reconstruction contains 1 NaN"):
        evaluate.evaluate_cube(cube, nan_fn)
    # a black reconstruction scores 1 everywhere (and re-images as black even on the noisy track)
    black = evaluate.evaluate_cube(
        cube, lambda rgb: np.zeros((16, 16, 31), np.float32), "realworld", clusters=10
    )
    assert black["mrae"] == black["physical"] == black["spatial"] == pytest.approx(1.0)
    with pytest.raises(HsError, match="no ground-truth cubes"):
        evaluate.evaluate([], nan_fn)


def test_cli_evaluate_matches_library(hstool, tmp_path, tmp_cube):
    pytest.importorskip("hstool.recon.engine")
    import torch

    from hstool.recon.models.linear import LinearRecon
    from hstool.recon.weights import save_weights

    (tmp_path / "gt").mkdir()
    cubes = [tmp_cube(24, 28, seed=s) for s in (4, 5)]
    for i, c in enumerate(cubes):
        write_cube(c, tmp_path / "gt" / f"ARAD_HS_{i:04d}.mat")
    fn = linear_fn(cubes[0])
    model = LinearRecon(31)
    model.weight.copy_(torch.from_numpy(fn.w).float())
    weights = save_weights(model, tmp_path / "lin.safetensors", {"architecture": "linear", "track": "clean"})

    args = [
        "evaluate",
        "--model",
        "linear",
        "--weights",
        weights,
        tmp_path / "gt",
        "--clusters",
        "60",
        "--device",
        "cpu",
    ]
    result = hstool(*args, "--json", "--limit", "1")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["image"] for r in out["images"]] == ["ARAD_HS_0000"]
    want = evaluate.evaluate([tmp_path / "gt" / "ARAD_HS_0000.mat"], fn, "clean", 0, clusters=60)
    for key in evaluate.TABLE3:
        assert out["mean"][key] == pytest.approx(want["mean"][key], rel=1e-4, abs=1e-7), key
    table = hstool(*args)
    assert table.exit_code == 0, table.output
    assert "Table" in table.stdout and "mean" in table.stdout and "Table" not in table.stderr
    (tmp_path / "empty").mkdir()
    empty = hstool("evaluate", "--model", "linear", "--weights", weights, tmp_path / "empty")
    assert empty.exit_code == 1 and "folder holds no" in empty.stderr
    bad = hstool("evaluate", "--model", "linear", "--weights", weights, tmp_path / "gt", "--eps", "-1")
    assert bad.exit_code == 1 and "--eps must be a number >= 0" in bad.stderr
    # a model on another band grid is refused once, before any file
    grid16 = np.linspace(400, 700, 16)
    w16 = save_weights(LinearRecon(16), tmp_path / "lin16.safetensors",
                       {"architecture": "linear", "track": "clean", "wavelengths": grid16.tolist(),
                        "config": {"out_bands": 16}})
    bad = hstool("evaluate", "--model", "linear", "--weights", w16, tmp_path / "gt")
    assert bad.exit_code == 1 and bad.stderr.count("error:") == 1, bad.output
    assert "band grids differ: the model's 400-700 nm in 16 bands" in bad.stderr
    # an unreadable first file is reported by the batch, and the others are still scored
    (tmp_path / "gt" / "ARAD_HS_0000.mat").write_bytes(b"not a mat file")
    some = hstool("evaluate", "--model", "linear", "--weights", weights, tmp_path / "gt", "--json",
                  "--clusters", "60")
    assert some.exit_code == 1 and "ARAD_HS_0000.mat" in some.stderr
    assert [r["image"] for r in json.loads(some.stdout)["images"]] == ["ARAD_HS_0001"]
    # a first cube on another grid fails alone: the model fits the next one, which is scored
    odd = read_cube(tmp_path / "gt" / "ARAD_HS_0001.mat")
    write_cube(odd.with_data(odd.data[..., :30], wavelengths=odd.wavelengths[:30]), tmp_path / "gt" / "A.npz")
    (tmp_path / "gt" / "ARAD_HS_0000.mat").unlink()
    some = hstool("evaluate", "--model", "linear", "--weights", weights, tmp_path / "gt", "--json",
                  "--clusters", "60")
    assert some.exit_code == 1 and f"{tmp_path / 'gt' / 'A.npz'}: band grids differ" in some.stderr
    report = json.loads(some.stdout)
    assert [r["image"] for r in report["images"]] == ["ARAD_HS_0001"] and len(report["failed"]) == 1


def test_negative_ground_truth_refused_before_reconstructing_or_clipped(tmp_path, tmp_cube):
    cube = tmp_cube(16, 16, seed=6)
    data = cube.data.copy()
    data[2, 3, :4] = -0.01  # calibration noise in a dark pixel
    noisy = cube.with_data(data)
    calls = []

    def fn(rgb):
        calls.append(1)
        return np.full((16, 16, 31), 0.5, np.float32)

    with pytest.raises(metrics.NegativeGroundTruth, match="ground truth has 4 negative values"):
        evaluate.evaluate_cube(noisy, fn, clusters=10)
    assert calls == []  # refused before any reconstruction
    write_cube(noisy, tmp_path / "ARAD_HS_0003.npy")
    with pytest.raises(HsError, match="ARAD_HS_0003.npy: ground truth has 4 negative values"):
        evaluate.evaluate_file(tmp_path / "ARAD_HS_0003.npy", fn, clusters=10)
    # clip_negative scores the clipped cube, whose zeros then follow eps
    row = evaluate.evaluate_cube(noisy, fn, clusters=10, eps=1e-3, clip_negative=True)
    clipped = np.clip(data, 0, None).astype(np.float64)
    assert row["mrae"] == pytest.approx(np.mean(np.abs(clipped - 0.5) / (clipped + 1e-3)), rel=1e-6)
    assert row["gt_zeros"] == 4
    assert row == evaluate.evaluate_cube(cube.with_data(np.clip(data, 0, None)), fn, clusters=10, eps=1e-3)


def test_cli_evaluate_negative_ground_truth_fails_its_cube_only(hstool, tmp_path, tmp_cube):
    pytest.importorskip("hstool.recon.engine")
    (tmp_path / "gt").mkdir()
    noisy = tmp_cube(8, 10, seed=7)
    data = noisy.data.copy()
    data[1, 1, :3] = -0.01
    write_cube(noisy.with_data(data), tmp_path / "gt" / "ARAD_HS_0001.npy")
    write_cube(tmp_cube(8, 10, seed=8), tmp_path / "gt" / "ARAD_HS_0002.npy")
    args = ["evaluate", "--model", "linear", "--weights", "none", tmp_path / "gt", "--device", "cpu",
            "--clusters", "10", "--json"]
    r = hstool(*args)
    assert r.exit_code == 1 and "Traceback" not in r.output
    want = f"{tmp_path / 'gt' / 'ARAD_HS_0001.npy'}: ground truth has 3 negative values (min -0.01)"
    assert want in r.stderr
    assert [row["image"] for row in json.loads(r.stdout)["images"]] == ["ARAD_HS_0002"]
    r = hstool(*args, "--clip-negative", "--eps", "1e-3")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["images"]
    assert [row["image"] for row in rows] == ["ARAD_HS_0001", "ARAD_HS_0002"] and rows[0]["gt_zeros"] == 3


def test_find_rgb_takes_the_tracks_own_image_and_never_another_tracks(tmp_path):
    from hstool.recon.evaluate import find_rgb

    names = ["A_clean.png", "A_RealWorld.jpg", "B_clean.png", "C.png", "D_clean.png", "D.png", "F_rgb.png",
             "G_realworld.jpg", "G.png", "scene_clean.png", "roof_north_clean.png", "H.png", "H_rgb.png"]
    images = [tmp_path / n for n in names]
    assert find_rgb(images, "A", "_RealWorld").name == "A_RealWorld.jpg"
    assert find_rgb(images, "A", "_clean").name == "A_clean.png"
    assert find_rgb(images, "C", "_RealWorld").name == "C.png"  # a name without a track: anyone's
    assert find_rgb(images, "D", "_RealWorld").name == "D.png"
    assert find_rgb(images, "F", "_clean").name == "F_rgb.png"  # _rgb names no track
    assert find_rgb(images, "G", "_RealWorld").name == "G_realworld.jpg"  # the track's own, any case
    assert find_rgb(images, "scene_clean", "_RealWorld").name == "scene_clean.png"  # its own name, not a track
    assert find_rgb(images, "H", "_clean").name == "H.png"  # the plain name before _rgb
    assert find_rgb(images, "roof", "_clean", missing_ok=True) is None  # roof_north is another cube's
    with pytest.raises(HsError, match=r"only images named for another track \(B_clean.png\); this track's would be "
                                      r"B_RealWorld"):
        find_rgb(images, "B", "_RealWorld")
    with pytest.raises(HsError, match="several input images match D: D_clean.png, D_CLEAN.png"):
        find_rgb(images + [tmp_path / "D_CLEAN.png"], "D", "_clean")
    assert find_rgb(images, "D", "_clean").name == "D_clean.png"
    assert find_rgb(images, "D", "").name == "D.png"  # no track: the plain name
    assert find_rgb(images, "E", "_clean", missing_ok=True) is None
    with pytest.raises(HsError, match="no input RGB image named E"):
        find_rgb(images, "E", "_clean")


def test_cli_evaluate_takes_the_weights_track_files_and_their_model(hstool, tmp_path, tmp_cube):
    """-w FILE: evaluated on the camera it was trained for (it was scored on clean, silently),
    its model read from the file; several files and folders are named as in the other commands."""
    from hstool.recon.weights import bundled_path

    for i in range(2):
        write_cube(tmp_cube(16, 20, seed=i), tmp_path / f"c{i}.mat")
    w = bundled_path("linear", "realworld")
    r = hstool("evaluate", tmp_path / "c0.mat", tmp_path / "c1.mat", "-w", w, "--clusters", "10", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["track"] == "realworld" and report["model"] == "linear"
    assert [row["image"] for row in report["images"]] == ["c0", "c1"]
    assert [row["gt"] for row in report["images"]] == [str(tmp_path / "c0.mat"), str(tmp_path / "c1.mat")]
    r = hstool("evaluate", tmp_path, "-w", w, "-t", "clean")
    assert r.exit_code == 1 and "trained for the realworld track" in r.stderr
    r = hstool("evaluate", tmp_path)
    assert r.exit_code == 1 and "give --model NAME" in r.stderr


def test_library_evaluate_takes_one_path_and_a_seed_sequence(tmp_path, tmp_cube):
    """As simulate does: an int or a SeedSequence (each file its child by stem); a bad seed is an
    HsError; one path needs no list."""
    cube = tmp_cube(12, 14, seed=2)
    write_cube(cube, tmp_path / "A.mat")
    fn = linear_fn(cube)
    one = evaluate.evaluate(tmp_path / "A.mat", fn, "realworld", seed=np.random.SeedSequence(4), clusters=10)
    again = evaluate.evaluate([str(tmp_path / "A.mat")], fn, "realworld", seed=np.random.SeedSequence(4), clusters=10)
    assert one == again and one["images"][0]["image"] == "A"
    assert evaluate.evaluate(tmp_path / "A.mat", fn, "realworld", seed=4, clusters=10) == one  # SeedSequence(4) is 4
    child = np.random.SeedSequence(4).spawn(1)[0]
    other = evaluate.evaluate(tmp_path / "A.mat", fn, "realworld", seed=child, clusters=10)
    assert other["images"][0]["mrae"] != one["images"][0]["mrae"]  # another sequence, other noise
    for bad in (-1, 1.5, np.random.default_rng(0)):
        with pytest.raises(HsError, match="seed must be an integer >= 0 or a numpy SeedSequence"):
            evaluate.evaluate(tmp_path / "A.mat", fn, "clean", seed=bad, clusters=10)


def test_score_pair_takes_images_as_codes_or_unit_floats_and_refuses_another_band_grid(tmp_cube):
    """An 8-bit image as uint8 codes scores what the same image read as [0, 1] floats scores (it
    was compared as 0-255 against 0-1, a consistency of ~1); cubes on two band grids are refused,
    as `hstool score` refuses their files."""
    gt = tmp_cube(12, 16)
    pred = gt.with_data(gt.data * 1.02)
    codes = np.floor(np.clip(simulate(gt, "clean", 0), 0, 1) * 255).astype(np.uint8)
    as_float = evaluate.score_pair(pred, gt, ("mrae",), pipeline="clean", rgb=codes / np.float32(255), seed=3)
    as_codes = evaluate.score_pair(pred, gt, ("mrae",), pipeline="clean", rgb=codes, seed=3)
    assert as_codes["physical"] == as_float["physical"] < 0.05
    assert as_codes["physical_linear"] == pytest.approx(as_float["physical_linear"], rel=1e-6)
    shifted = pred.with_data(pred.data, wavelengths=gt.wavelengths + 10)
    with pytest.raises(HsError, match="band grids differ"):
        evaluate.score_pair(shifted, gt, ("mrae",))


def test_brightness_columns_are_na_on_a_track_with_automatic_exposure(tmp_cube):
    """ntire2022 scales each image to a mean of 0.18: the cube x0.5 and x2 image exactly as the cube
    does, so scoring them against scaled cubes measured nothing; they are NaN, the rest is scored."""
    cube = tmp_cube(24, 28, seed=4)
    pipe = track("ntire2022")
    np.testing.assert_array_equal(simulate(cube, pipe, 1), simulate(cube.with_data(cube.data * 2), pipe, 1))
    row = evaluate.evaluate_cube(cube, linear_fn(cube, pipe), pipe, seed=0, clusters=20)
    assert np.isnan(row["brightness_0.5"]) and np.isnan(row["brightness_2"])
    assert all(np.isfinite(row[k]) for k in ("mrae", "rmse", "spatial", "physical", "weighted"))


def test_cli_evaluate_takes_the_organisers_noise(hstool, tmp_path, tmp_cube):
    """--dark-noise-quirk (and --npe) reach the images evaluate simulates, as simulate's options do;
    the model stays the track's; on the noiseless clean track the quirk is refused."""
    write_cube(tmp_cube(24, 28, seed=6), tmp_path / "gt" / "ARAD_HS_0001.mat")
    base = ["evaluate", tmp_path / "gt", "-m", "linear", "-t", "realworld", "--clusters", "20", "--json"]
    plain, quirk = (hstool(*base, *extra) for extra in ((), ("--dark-noise-quirk", "--npe", "2000")))
    assert plain.exit_code == 0 and quirk.exit_code == 0, quirk.output
    report = json.loads(quirk.stdout)
    assert report["pipeline"]["dark_noise_quirk"] is True and report["pipeline"]["npe"] == 2000
    from hstool.recon import Reconstructor

    want = evaluate.evaluate([tmp_path / "gt" / "ARAD_HS_0001.mat"], Reconstructor("linear", track="realworld"),
                             track("realworld", npe=2000, dark_noise_quirk=True), 0, clusters=20)
    assert report["mean"]["mrae"] == pytest.approx(want["mean"]["mrae"], rel=1e-6)
    assert report["mean"]["mrae"] != json.loads(plain.stdout)["mean"]["mrae"]
    bad = hstool("evaluate", tmp_path / "gt", "-m", "linear", "--dark-noise-quirk")
    assert bad.exit_code == 1 and "--dark-noise-quirk acts only with sensor noise" in bad.stderr
