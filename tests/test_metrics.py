"""Metrics and weighted accuracy against straight hand computations and closed-form cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from hstool.hsdata import HsError
from hstool.recon import clusters, metrics


def pair(shape=(3, 4, 5), seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.1, 1.0, shape)
    pred = gt + rng.normal(0, 0.05, shape)
    return pred, gt


def entries(pred, gt):
    """(pixel index, band list of (p, g)) in plain Python, for loop-based references."""
    h, w, b = gt.shape
    return [
        [(float(pred[i, j, k]), float(gt[i, j, k])) for k in range(b)] for i in range(h) for j in range(w)
    ]


def test_mrae_rmse_psnr_sam_match_loops():
    pred, gt = pair()
    px = entries(pred, gt)
    n = sum(len(p) for p in px)
    assert metrics.mrae(pred, gt) == pytest.approx(
        sum(abs(g - p) / g for s in px for p, g in s) / n, rel=1e-12
    )
    mse = sum((g - p) ** 2 for s in px for p, g in s) / n
    assert metrics.rmse(pred, gt) == pytest.approx(math.sqrt(mse), rel=1e-12)
    assert metrics.psnr(pred, gt) == pytest.approx(10 * math.log10(1 / mse), rel=1e-12)
    assert metrics.psnr(pred, gt, peak=2.0) == pytest.approx(10 * math.log10(4 / mse), rel=1e-12)
    angles = []
    for s in px:
        dot = sum(p * g for p, g in s)
        npred = math.sqrt(sum(p * p for p, _ in s))
        ngt = math.sqrt(sum(g * g for _, g in s))
        angles.append(math.acos(max(-1.0, min(1.0, dot / (npred * ngt)))))
    assert metrics.sam(pred, gt) == pytest.approx(sum(angles) / len(angles), rel=1e-10)
    # maps: one value per pixel, averaging to the whole-image value
    assert metrics.sam_map(pred, gt).ravel() == pytest.approx(angles, rel=1e-10)
    first = px[0]
    assert metrics.mrae_map(pred, gt)[0, 0] == pytest.approx(
        sum(abs(g - p) / g for p, g in first) / len(first)
    )
    assert metrics.rmse_map(pred, gt).shape == (3, 4)
    assert metrics.psnr_map(pred, gt)[0, 0] == pytest.approx(
        10 * math.log10(len(first) / sum((g - p) ** 2 for p, g in first))
    )
    assert metrics.mrae_map(pred, gt).mean() == pytest.approx(metrics.mrae(pred, gt))


def test_float32_inputs_score_like_float64():
    pred, gt = pair((16, 16, 31), seed=3)
    for f in (metrics.mrae, metrics.rmse, metrics.psnr, metrics.sam, metrics.ssim):
        assert f(pred.astype(np.float32), gt.astype(np.float32)) == pytest.approx(f(pred, gt), rel=1e-5), f


def test_known_cases():
    _, gt = pair((4, 4, 6))
    assert metrics.mrae(gt, gt) == 0.0 and metrics.rmse(gt, gt) == 0.0
    assert metrics.psnr(gt, gt) == math.inf
    assert metrics.sam(gt, gt) == pytest.approx(0.0, abs=1e-6)
    assert metrics.ssim(gt, gt) == pytest.approx(1.0)
    assert metrics.mrae(gt * 1.1, gt) == pytest.approx(0.1)
    assert metrics.mrae(gt * 0.9, gt) == pytest.approx(0.1)
    # orthogonal spectra: light only in the first half of the bands vs only in the second half
    a = np.zeros((2, 3, 6))
    b = np.zeros((2, 3, 6))
    a[..., :3], b[..., 3:] = 0.5, 0.7
    assert metrics.sam(a, b) == pytest.approx(math.pi / 2)
    assert metrics.sam(a, a * 3) == pytest.approx(0.0, abs=1e-7)  # scale-invariant
    assert metrics.sam(a, -a) == pytest.approx(math.pi)  # cosine clipped, still defined


def test_mrae_zeros_organisers_inf_and_guarded_variants():
    pred, gt = pair((2, 3, 4))
    gt[0, 0, 0] = 0.0
    gt[1, 2, 3] = 0.0
    assert metrics.gt_zeros(gt) == 2
    assert metrics.mrae(pred, gt) == math.inf
    assert np.isinf(metrics.mrae_map(pred, gt)[0, 0]) and np.isfinite(metrics.mrae_map(pred, gt)[0, 1])
    px = entries(pred, gt)
    kept = [abs(g - p) / g for s in px for p, g in s if g != 0]
    assert metrics.mrae(pred, gt, ignore_zeros=True) == pytest.approx(sum(kept) / len(kept))
    eps = 1e-3
    guarded = [abs(g - p) / (g + eps) for s in px for p, g in s]
    assert metrics.mrae(pred, gt, eps=eps) == pytest.approx(sum(guarded) / len(guarded))
    with pytest.raises(HsError, match="zero everywhere"):
        metrics.mrae(pred, np.zeros_like(gt), ignore_zeros=True)


def test_relative_errors_refuse_negative_ground_truth_the_others_take_it():
    pred, gt = pair((3, 4, 5), seed=6)
    gt[0, 1, 2] = -0.02
    gt[2, 3, 0] = -0.005
    # |gt - pred| / gt would be negative there and lower the mean: refused, guarded or not
    want = r"^ground truth has 2 negative values \(min -0.02\)"
    for guard in ({}, {"eps": 1e-3}, {"ignore_zeros": True}):
        for f in (metrics.mrae, metrics.mrae_map, clusters.weighted_mrae):
            with pytest.raises(metrics.NegativeGroundTruth, match=want):
                f(pred, gt, **guard)
    with pytest.raises(HsError, match="--clip-negative sets them to 0.*--eps, --ignore-zeros"):
        metrics.score(pred, gt, ("rmse", "mrae"))
    # the back-projection divides by the projected ground truth: refused only where that is negative
    matrix = np.random.default_rng(1).uniform(0, 1, (5, 3))
    rp, rg = pred @ matrix, gt @ matrix
    assert metrics.backprojection_mrae(pred, gt, matrix) == pytest.approx(np.mean(np.abs(rg - rp) / rg))
    dark = gt.copy()
    dark[1, 1] *= -1  # one negative spectrum: its 3 projected values are negative
    with pytest.raises(metrics.NegativeGroundTruth, match="projected ground truth has 3 negative values"):
        metrics.backprojection_mrae(pred, dark, matrix)
    # the rest are defined for any real values
    out = metrics.score(pred, gt, ("rmse", "psnr", "sam"))
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean((gt - pred) ** 2)))
    assert math.isfinite(metrics.ssim(pred, gt))


def _ssim_reference(x, y, data_range=1.0):
    """Wang et al. 2004 with scipy's Gaussian filter, band by band (independent of the OpenCV path);
    mean over the map without a 5-px border, as skimage's structural_similarity(gaussian_weights=True,
    use_sample_covariance=False, data_range=...)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    for k in range(x.shape[2]):
        a, b = x[..., k], y[..., k]

        def g(v):
            return ndimage.gaussian_filter(v, 1.5, truncate=3.5, mode="reflect")

        ma, mb = g(a), g(b)
        va, vb, cab = g(a * a) - ma**2, g(b * b) - mb**2, g(a * b) - ma * mb
        s = ((2 * ma * mb + c1) * (2 * cab + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
        vals.append(s[5:-5, 5:-5].mean())
    return float(np.mean(vals))


def test_ssim_against_scipy_reference_and_closed_form():
    pred, gt = pair((20, 23, 4), seed=5)
    assert metrics.ssim(pred, gt) == pytest.approx(_ssim_reference(pred, gt), rel=1e-9)
    assert metrics.ssim(pred, gt, data_range=2.0) == pytest.approx(_ssim_reference(pred, gt, 2.0), rel=1e-9)
    assert metrics.ssim_map(pred, gt).shape == (20, 23)
    # constant images a and b: variances vanish, SSIM = (2ab + C1) / (a² + b² + C1)
    a, b, c1 = 0.3, 0.6, 0.01**2
    x, y = np.full((16, 16, 2), a), np.full((16, 16, 2), b)
    assert metrics.ssim(x, y) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))


def test_backprojection_and_rgb_consistency():
    pred, gt = pair((3, 4, 5), seed=2)
    matrix = np.random.default_rng(1).uniform(0, 1, (5, 3))
    rp, rg = pred @ matrix, gt @ matrix
    want = np.mean(np.abs(rg - rp) / rg)
    assert metrics.backprojection_mrae(pred, gt, matrix) == pytest.approx(want)
    assert metrics.rgb_consistency(pred, rg, matrix) == pytest.approx(want)
    assert metrics.rgb_consistency(gt, rg, matrix) == pytest.approx(0.0, abs=1e-12)
    # a quantised input RGB holds exact zeros: left out by default, inf on request
    rg[0, 0, 0] = 0.0
    assert math.isfinite(metrics.rgb_consistency(pred, rg, matrix))
    assert metrics.rgb_consistency(pred, rg, matrix, ignore_zeros=False) == math.inf
    with pytest.raises(HsError, match=r"\(5, C\)"):
        metrics.backprojection_mrae(pred, gt, matrix[:4])
    with pytest.raises(HsError, match="shape mismatch"):
        metrics.rgb_consistency(pred, rg[:2], matrix)


def test_bad_input_is_reported():
    pred, gt = pair((3, 4, 5))
    with pytest.raises(HsError, match=r"shape mismatch.*\(3, 3, 5\).*\(3, 4, 5\)"):
        metrics.mrae(pred[:, :3], gt)
    with pytest.raises(HsError, match="band mismatch: prediction has 4 bands, ground truth 5"):
        metrics.rmse(pred[..., :4], gt)
    bad = pred.copy()
    bad[0, 0, 0] = np.nan
    bad[1, 1, 1] = np.inf
    for f in (metrics.mrae, metrics.rmse, metrics.psnr, metrics.sam, metrics.ssim, clusters.weighted_mrae):
        with pytest.raises(HsError, match="prediction contains 1 NaN, 1 inf"):
            f(bad, gt)
    with pytest.raises(HsError, match="unknown metric 'foo'"):
        metrics.score(pred, gt, ("mrae", "foo"))
    with pytest.raises(HsError, match="leaves nothing"):
        metrics.crop(gt, 2)
    assert metrics.crop(gt, 1).shape == (1, 2, 5)


# --- weighted accuracy -------------------------------------------------------------------


def test_weighted_equals_mrae_when_every_pixel_is_its_own_cluster():
    pred, gt = pair((6, 7, 8), seed=4)
    assert clusters.weighted_mrae(pred, gt, clusters=42) == pytest.approx(metrics.mrae(pred, gt), rel=1e-12)
    # fewer clusters than pixels: k-means runs and the value differs from the plain mean
    assert clusters.weighted_mrae(pred, gt, clusters=5) != pytest.approx(metrics.mrae(pred, gt), rel=1e-6)


def test_weighted_invariant_to_duplicating_one_material():
    pred, gt = pair((5, 6, 8), seed=6)
    base = clusters.weighted_mrae(pred, gt, clusters=1000)
    # 40 extra copies of pixel (2, 3): a 30-pixel image becomes 70 pixels, 30 distinct spectra
    pred2 = np.concatenate([pred.reshape(-1, 8), np.repeat(pred[2, 3][None], 40, 0)]).reshape(7, 10, 8)
    gt2 = np.concatenate([gt.reshape(-1, 8), np.repeat(gt[2, 3][None], 40, 0)]).reshape(7, 10, 8)
    assert clusters.weighted_mrae(pred2, gt2, clusters=1000) == pytest.approx(base, rel=1e-12)
    assert metrics.mrae(pred2, gt2) != pytest.approx(metrics.mrae(pred, gt), rel=1e-3)  # the plain mean moves


def materials_scene(copies, seed=0):
    """Five well-separated materials (one-hot-like spectra) with a 1% jitter, ``copies[i]`` pixels each;
    prediction error differs by material."""
    rng = np.random.default_rng(seed)
    base = np.eye(5, 10) * 0.8 + 0.1
    gts, preds, labels = [], [], []
    for m, n in enumerate(copies):
        g = base[m] * (1 + 0.01 * rng.standard_normal((n, 10)))
        gts.append(g)
        preds.append(g * (1 + 0.05 * (m + 1) * rng.choice([-1, 1], (n, 10))))
        labels += [m] * n
    return np.concatenate(preds)[None], np.concatenate(gts)[None], np.array(labels)


def test_weighted_groups_materials_and_ignores_abundance():
    pred, gt, truth = materials_scene([10, 20, 30, 40, 300])
    per_material = [
        np.mean(np.abs(gt[0, truth == m] - pred[0, truth == m]) / gt[0, truth == m]) for m in range(5)
    ]
    assert clusters.weighted_mrae(pred, gt, clusters=5, seed=0) == pytest.approx(
        np.mean(per_material), rel=1e-9
    )
    assert clusters.weighted_mrae(pred, gt, clusters=5, seed=7) == pytest.approx(
        np.mean(per_material), rel=1e-9
    )
    labels = clusters.cluster_labels(gt, 5, seed=0)[0]
    assert all(len(set(labels[truth == m])) == 1 for m in range(5)) and len(set(labels)) == 5
    # more of the abundant material changes nothing
    pred2, gt2, _ = materials_scene([10, 20, 30, 40, 3000], seed=1)
    assert clusters.weighted_mrae(pred2, gt2, clusters=5) == pytest.approx(np.mean(per_material), rel=2e-2)


def test_fewer_distinct_spectra_than_clusters_and_seeding():
    gt = np.repeat(np.array([[0.2, 0.4, 0.6], [0.5, 0.1, 0.3], [0.9, 0.9, 0.1]]), [5, 50, 500], axis=0)[None]
    pred = gt * np.repeat([1.1, 1.2, 1.3], [5, 50, 500])[None, :, None]
    assert clusters.weighted_mrae(pred, gt, clusters=1000) == pytest.approx(0.2)
    labels = clusters.cluster_labels(gt, 1000)
    assert len(np.unique(labels)) == 3
    # brightness does not separate a material: spectra are L2-normalised before clustering
    shaded = clusters.cluster_labels(gt * np.linspace(0.5, 2, gt.shape[1])[None, :, None], 3)[0]
    assert [len(set(shaded[a:b])) for a, b in ((0, 5), (5, 55), (55, 555))] == [1, 1, 1]
    assert len(set(shaded)) == 3
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (3000, 31)).astype(np.float32)
    a, _ = clusters.kmeans(x, 50, seed=11)
    b, _ = clusters.kmeans(x, 50, seed=11)
    c, _ = clusters.kmeans(x, 50, seed=12)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_organisers_clustering_is_their_minibatch_kmeans_seeded():
    """method="organisers": MiniBatchKMeans(k, batch 10 % of the pixels, 5 starts) on every
    normalised pixel, as NTIRE2022Util.labelPixelGroup runs it; the seed fixes its random state."""
    sklearn = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(5)
    gt = (rng.uniform(0.1, 1, (30, 40, 1)) * rng.uniform(0.2, 1, (1, 1, 31))
          + rng.uniform(0, 0.2, (30, 40, 31))).astype(np.float32)
    labels = clusters.cluster_labels(gt, 25, seed=7, method="Organisers")
    state = int(np.random.default_rng(7).integers(2**31 - 1))
    x = gt.reshape(-1, 31) / np.linalg.norm(gt.reshape(-1, 31), axis=1, keepdims=True)
    theirs = sklearn.MiniBatchKMeans(n_clusters=25, batch_size=120, n_init=5, random_state=state).fit(x).labels_
    np.testing.assert_array_equal(labels.ravel(), theirs)
    assert np.array_equal(labels, clusters.cluster_labels(gt, 25, seed=7, method="organisers"))
    pred = gt * np.float32(1.1)
    assert clusters.weighted_mrae(pred, gt, 25, seed=7, method="organisers") == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(HsError, match="unknown clustering 'faiss'"):
        clusters.cluster_labels(gt, 25, method="faiss")


def test_kmeans_lowers_inertia_below_its_seeding_and_assign_is_exact():
    rng = np.random.default_rng(0)
    x = clusters.normalise(rng.gamma(2.0, 1.0, (4000, 31)))
    seeds = clusters.kmeans_pp(x, np.ones(len(x)), 64, np.random.default_rng(0))
    brute = np.argmin(((x[:, None, :].astype(np.float64) - seeds[None]) ** 2).sum(-1), axis=1)
    assert np.mean(clusters.assign(x, seeds) == brute) > 0.999  # float32 ties aside, the nearest centre
    seeded = clusters.inertia(x, brute, seeds)
    labels, centres = clusters.kmeans(x, 64, seed=0, sample=2000)
    assert np.allclose(centres[5], x[labels == 5].mean(0), atol=1e-6)  # centres are the clusters' means
    assert clusters.inertia(x, labels, centres) < 0.9 * seeded
    # the principal-axes projection barely changes the result
    full, full_centres = clusters.kmeans(x, 64, seed=0, sample=2000, keep=None)
    assert clusters.inertia(x, labels, centres) == pytest.approx(
        clusters.inertia(x, full, full_centres), rel=0.03
    )


def test_metric_parameters_and_complex_inputs_are_refused():
    from hstool.hsdata import HsError

    g = np.full((2, 3, 4), 0.5)
    p = g * 1.1
    for eps in (-1.0, float("nan"), float("inf")):
        with pytest.raises(HsError, match="eps must be a number >= 0"):
            metrics.mrae(p, g, eps=eps)
    for peak in (-1.0, 0.0, float("nan")):
        with pytest.raises(HsError, match="peak must be a positive number"):
            metrics.psnr(p, g, peak=peak)
    with pytest.raises(HsError, match="prediction holds complex values"):
        metrics.rmse(p + 0j, g)
    per_band = np.array([0.0, 0.1, 0.2, 0.3])  # one eps per band broadcasts as before
    assert metrics.mrae(p, g, eps=per_band) == pytest.approx(np.mean(np.abs(p - g) / (g + per_band)))
    with pytest.raises(HsError, match="eps must be a number >= 0"):
        metrics.mrae(p, g, eps=np.array([0.0, -0.1, 0.2, 0.3]))


def test_one_guard_against_zeros_at_a_time():
    gt = np.full((2, 2, 3), 0.5)
    with pytest.raises(HsError, match="two guards against zeros: give one"):
        metrics.mrae(gt * 1.1, gt, eps=1e-3, ignore_zeros=True)


def test_rgb_consistency_takes_eps_as_its_guard():
    rng = np.random.default_rng(3)
    matrix = rng.uniform(0, 1, (31, 3))
    pred = rng.uniform(0.1, 1, (4, 5, 31))
    rgb = pred @ matrix * 1.05
    rgb[0, 0, 0] = 0  # a quantised dark pixel
    back = pred @ matrix
    got = metrics.rgb_consistency(pred, rgb, matrix, eps=1e-3)  # eps alone: no second guard by default
    assert got == pytest.approx(np.mean(np.abs(back - rgb) / (rgb + 1e-3)))


def test_eps_zero_is_the_unguarded_mrae_without_a_warning():
    import warnings

    gt = np.array([[[0.5, 0.0, 0.25]]])
    pred = np.array([[[0.4, 0.1, 0.25]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.mrae(pred, gt, eps=0.0) == math.inf
        assert metrics.mrae(pred, gt, eps=np.array([0.0, 1.0, 0.0])) == pytest.approx((0.2 + 0.1 + 0) / 3)


def test_library_misuse_is_named():
    from hstool.hsdata import ARAD_WAVELENGTHS, Cube

    gt = np.full((2, 3, 31), 0.5)
    with pytest.raises(HsError, match=r"ground truth: pass the cube's values \(cube.data\), not the Cube"):
        metrics.mrae(gt, Cube(gt, ARAD_WAVELENGTHS))
    assert metrics.score(gt * 1.1, gt, "mrae") == {"mrae": pytest.approx(0.1)}  # one name, not its letters


def test_metrics_refuse_scalars_text_and_a_range_that_is_no_positive_number():
    g = np.random.default_rng(0).uniform(0.1, 1, (8, 8, 3)).astype(np.float32)
    with pytest.raises(HsError, match="must be an array of numbers"):
        metrics.mrae(1.0, 2.0)
    with pytest.raises(HsError, match="must be an array of numbers"):
        metrics.rmse(np.full((2, 3), "a"), np.ones((2, 3)))
    with pytest.raises(HsError, match="peak must be a positive number, got '1'"):
        metrics.psnr(g, g * 1.1, peak="1")
    for bad in (0, -1.0):
        with pytest.raises(HsError, match="data_range must be a positive number"):
            metrics.ssim(g, g, data_range=bad)
    # score's data_range is PSNR's peak too: a cube and its error scaled together score alike
    assert metrics.score(g * 4, g * 4.4, "psnr", data_range=4.0)["psnr"] == pytest.approx(metrics.psnr(g, g * 1.1))


def test_consistency_takes_uint8_or_uint16_codes_only_and_crop_whole_pixels():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.1, 1, (6, 7, 31)).astype(np.float32)
    matrix = rng.uniform(0, 1, (31, 3))
    codes = np.clip(pred @ matrix / (pred @ matrix).max() * 255, 0, 255).astype(np.uint8)
    assert metrics.rgb_consistency(pred, codes, matrix) == pytest.approx(
        metrics.rgb_consistency(pred, codes / np.float32(255), matrix), rel=1e-6)
    for kind in (np.int16, np.int32, np.int64):
        with pytest.raises(HsError, match="integer images are uint8 or uint16 codes"):
            metrics.rgb_consistency(pred, codes.astype(kind), matrix)
    for border in (2.5, -3, "2"):
        with pytest.raises(HsError, match="a crop is a whole number of pixels"):
            metrics.crop(pred, border)
    with pytest.raises(HsError, match="eps is a number"):
        metrics.mrae(pred, pred, eps="0.1")
