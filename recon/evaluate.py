"""Scoring files and the extended evaluation protocol of the NTIRE 2020 report (Table 3).

* :func:`pair_files`, :func:`score_pair`, :func:`write_error_maps`: what ``hstool score`` does to
  each prediction / ground-truth pair.
* :func:`evaluate` / :func:`evaluate_cube`: Arad et al., "NTIRE 2020 Challenge on Spectral
  Reconstruction from an RGB Image", CVPRW 2020, Sec. 3 and Table 3. For each ground-truth cube:
  simulate the track's RGB, reconstruct, score (MRAE, RMSE); then the auxiliary tests —
  brightness ×0.5 and ×2 (the cube scaled, its RGB simulated "following the original
  methodology", scored against the scaled cube), spatial 4×4 shuffle (the input RGB and the cube
  permuted by the same random relocation of 4×4 patches), physical consistency (the reconstruction
  run through the track's pipeline again and compared with the input RGB, see
  :func:`physical_consistency`; also, noise-free, its linear projection against the projected
  ground truth) and weighted accuracy (:mod:`hstool.recon.clusters`). The
  "out-of-scope" column needs other images and is not part of this protocol.

``recon_fn(rgb (H, W, 3) float32 [0, 1]) -> (H, W, B)`` is any reconstruction, e.g. an
:class:`hstool.recon.Reconstructor`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hstool.hsdata import Cube, HsError, check_writable, read_cube
from hstool.hsdata.formats.image import save_figure

from . import metrics
from .clusters import weighted_mrae

ReconFn = Callable[[np.ndarray], np.ndarray]
SCORE_METRICS = (*metrics.METRICS, "weighted")
TABLE3 = (
    "mrae",
    "rmse",
    "spatial",
    "brightness_0.5",
    "brightness_2",
    "physical",
    "backprojection",
    "weighted",
)
def pair_files(
    preds: Sequence[Path], gts: Sequence[Path], any_name: bool = False
) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """Pair files by exact stem across formats (``ARAD_HS_0451.mat`` ↔ ``ARAD_HS_0451.npy``), then
    the files left by their stems without a track suffix (``ARAD_HS_0451.mat`` ↔
    ``ARAD_HS_0451_clean.mat``, as ``simulate --shuffle`` names its permuted cubes).

    With ``any_name`` (two files named by the caller, not found in folders) a single file on each
    side is paired whatever its stem. Returns (pairs, unpaired predictions, unpaired ground
    truths); two files with one stem on one side is an error.
    """
    if any_name and len(preds) == 1 and len(gts) == 1:
        return [(preds[0], gts[0])], [], []

    def by_stem(files: Sequence[Path]) -> dict[str, Path]:
        table: dict[str, Path] = {}
        for f in files:
            if f.stem in table:
                raise HsError(
                    f"two files with the stem '{f.stem}': {table[f.stem].name} and {f.name}", f.parent
                )
            table[f.stem] = f
        return table

    p, g = by_stem(preds), by_stem(gts)
    pairs = {s: (p[s], g[s]) for s in set(p) & set(g)}
    # then a track suffix is dropped from what is left: recon names X_clean.png's cube X, and
    # simulate --shuffle writes the permuted ground truth beside its image as X_clean.mat
    from hstool.camera.pipeline import strip_track_suffix

    def stripped(side: dict[str, Path]) -> dict[str, Path]:
        """Unpaired files by their stem without a track suffix; a stem two of them share is
        ambiguous (X_clean and X_RealWorld) and pairs neither."""
        table: dict[str, list[Path]] = {}
        for s, f in side.items():
            if s not in pairs:
                table.setdefault(strip_track_suffix(s), []).append(f)
        return {s: files[0] for s, files in table.items() if len(files) == 1 and s not in pairs}

    rest_p, rest_g = stripped(p), stripped(g)
    for s in set(rest_p) & set(rest_g):
        pairs[s] = (rest_p[s], rest_g[s])
    done = {f for pair in pairs.values() for f in pair}
    return ([pairs[s] for s in sorted(pairs)], sorted((f for f in preds if f not in done), key=lambda f: f.stem),
            sorted((f for f in gts if f not in done), key=lambda f: f.stem))


def find_rgb(images: Sequence[Path], stem: str, suffix: str = "", missing_ok: bool = False) -> Path | None:
    """The input image of cube ``stem``: named ``stem``, or ``stem`` and a track suffix
    (``ARAD_HS_0451_clean.png``, ``_RealWorld``, ``_ntire2022``, ``_rgb``; case-insensitive). Among
    several, the one of the track's ``suffix``, else one named for no track (``stem``, ``stem_rgb``);
    an image named for another track is never taken for this one. None for no image at all when
    ``missing_ok``."""
    from hstool.camera.pipeline import TRACK_SUFFIXES

    known = {s.lower() for s in TRACK_SUFFIXES}
    hits: list[tuple[Path, str]] = []  # (image, what its name adds to the cube's, lower case)
    for p in images:
        tail = p.stem[len(stem):].lower() if p.stem.startswith(stem) else None
        if tail == "" or tail in known:
            hits.append((p, tail))
    if not hits:
        if missing_ok:
            return None
        raise HsError(f"no input RGB image named {stem}*", images[0].parent if images else None)
    own = [p for p, tail in hits if suffix and tail == suffix.lower()]
    neutral = [p for p, tail in hits if tail == ""] or [p for p, tail in hits if tail == "_rgb"]
    usable = own or neutral or ([p for p, _ in hits] if not suffix else [])
    if not usable:
        other = ", ".join(p.name for p, _ in hits)
        raise HsError(f"only images named for another track ({other}); this track's would be {stem}{suffix}.*",
                      hits[0][0].parent)
    if len(usable) > 1:
        raise HsError(f"several input images match {stem}: {', '.join(p.name for p in usable)}", usable[0].parent)
    return usable[0]


def physical_consistency(
    pred: Cube,
    rgb: np.ndarray,
    pipeline="clean",
    rng: int | np.random.Generator | np.random.SeedSequence | None = None,
    *,
    crop: int = 0,
    eps: float | None = None,
) -> float:
    """Physical consistency as the NTIRE 2020 report measured it (Sec. 3.4, Table 3 "Physical"): the
    reconstruction (negatives clipped) is run through the original camera pipeline again and the
    re-generated RGB is compared with the input RGB by MRAE (zeros of the input left out).

    A perfect reconstruction scores 0 on the noise-free clean track and the noise floor on the
    real-world track (fresh noise: the report's 0.033-0.036 for the top entries). Compared with
    :func:`hstool.recon.metrics.rgb_consistency` (the linear projection against the quantised
    image), this is not dominated by 8-bit quantisation of dark pixels. A PNG pipeline re-images
    at the input's bit depth (a 16-bit input of ``simulate --bits 16`` is compared in 16 bits).
    ``rgb`` is in [0, 1] as :func:`hstool.hsdata.read_rgb` gives it, or a uint8/uint16 array.
    """
    from hstool.camera import simulate, track
    from hstool.camera.stages import code_bits

    pipe = track(pipeline) if isinstance(pipeline, str) else pipeline
    rgb = metrics.image_units(rgb)
    bits = code_bits(rgb)
    if bits is not None and bits != pipe.bits and pipe.encoding == "png":
        pipe = pipe.replace(bits=bits)
    if rgb.shape[:2] != pred.data.shape[:2]:
        raise HsError(f"input RGB is {rgb.shape[0]}×{rgb.shape[1]}, the cube {pred.height}×{pred.width}")
    metrics.check_finite(pred.data)
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    positive = np.clip(pred.data, 0, None)
    if np.any(positive @ pipe.matrix(pred.wavelengths) > 0):
        again = simulate(pred.with_data(positive), pipe, rng)
    else:  # a black reconstruction re-images as black (noise levels cannot be set on a black scene)
        again = np.zeros_like(rgb, dtype=np.float32)
    return metrics.mrae(metrics.crop(again, crop), metrics.crop(rgb, crop), eps=eps, ignore_zeros=eps is None)


def _file_seeds(seed: int | np.random.SeedSequence) -> tuple[np.random.SeedSequence, ...]:
    """A file's seed children (:func:`hstool.camera.capture_seeds`) from its sequence or an integer."""
    from hstool.camera import capture_seeds

    if isinstance(seed, np.random.SeedSequence):
        return capture_seeds(seed)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise HsError(f"seed must be an integer >= 0 or a numpy SeedSequence, not {seed!r}")
    return capture_seeds(np.random.SeedSequence(int(seed)))


def score_pair(
    pred: Cube,
    gt: Cube,
    metric_names: Sequence[str] = ("mrae", "rmse", "psnr", "sam"),
    *,
    crop: int = 0,
    eps: float | None = None,
    ignore_zeros: bool = False,
    pipeline=None,
    rgb: np.ndarray | None = None,
    clusters: int = 1000,
    seed: int | np.random.SeedSequence = 0,
    per_band: bool = False,
    clustering: str = "hstool",
) -> dict:
    """Metrics of one pair after cropping ``crop`` px per border; with ``per_band`` also
    ``per_band``: ``{"wavelengths", "mrae", "rmse"}``, each band's MRAE and RMSE. With a camera ``pipeline`` (a track
    name or :class:`hstool.camera.Pipeline`) also ``backprojection`` (MRAE of ``pred @ M`` against
    ``gt @ M``, ``M = pipeline.matrix``); with the input ``rgb`` too, ``physical``
    (:func:`physical_consistency`) and ``physical_linear`` (:func:`metrics.rgb_consistency`).
    ``seed`` is the file's sequence (:func:`hstool.camera.file_seed`): its children draw the
    re-simulation's noise and seed the weighted MRAE's k-means, so every method scored with one
    seed is weighted by the same clusters of a ground truth; ``clustering`` is the k-means
    (:func:`hstool.recon.clusters.cluster_labels`: ``hstool`` or the ``organisers``')."""
    unknown = set(metric_names) - set(SCORE_METRICS)
    if unknown:
        raise HsError(f"unknown metric(s) {', '.join(sorted(unknown))} (known: {', '.join(SCORE_METRICS)})")
    if not isinstance(pred, Cube) or not isinstance(gt, Cube):
        raise HsError("score_pair takes two Cubes (their band grids must match); the metrics module scores arrays")
    metrics.check_pair(pred.data, gt.data)
    check_grids(pred.wavelengths, gt.wavelengths)
    p, g = metrics.crop(pred.data, crop), metrics.crop(gt.data, crop)
    plain = [m for m in metric_names if m != "weighted"]
    row: dict = metrics.score(p, g, tuple(plain), eps=eps, ignore_zeros=ignore_zeros)
    _, _, regen_ss, cluster_ss = _file_seeds(seed)
    if "weighted" in metric_names:
        row["weighted"] = weighted_mrae(p, g, clusters, cluster_ss, eps=eps, ignore_zeros=ignore_zeros,
                                        method=clustering)
    if pipeline is not None:
        from hstool.camera import track

        pipe = track(pipeline) if isinstance(pipeline, str) else pipeline
        matrix = pipe.matrix(gt.wavelengths)
        row["backprojection"] = metrics.backprojection_mrae(p, g, matrix, eps=eps, ignore_zeros=ignore_zeros)
        if rgb is not None:
            row["physical"] = physical_consistency(
                pred, rgb, pipe, np.random.default_rng(regen_ss), crop=crop, eps=eps
            )
            row["physical_linear"] = metrics.rgb_consistency(p, metrics.crop(rgb, crop), matrix, eps=eps)
    if per_band:
        row["per_band"] = {
            "wavelengths": gt.wavelengths.tolist(),
            "mrae": metrics.mrae_per_band(p, g, eps=eps, ignore_zeros=ignore_zeros).tolist(),
            "rmse": metrics.rmse_per_band(p, g).tolist(),
        }
    row["gt_zeros"] = metrics.gt_zeros(g)
    return row


def mean_per_band(rows: Sequence[dict]) -> dict | None:
    """The mean over images of each band's MRAE and RMSE (``score_pair(per_band=True)`` rows), or
    None when the images do not share one band grid."""
    bands = [r["per_band"] for r in rows if "per_band" in r]
    if not bands or any(b["wavelengths"] != bands[0]["wavelengths"] for b in bands):
        return None
    return {"wavelengths": bands[0]["wavelengths"],
            **{k: np.mean([b[k] for b in bands], axis=0).tolist() for k in ("mrae", "rmse")}}


def plot_per_band(rows: Sequence[dict], path: Path, overwrite: bool = False) -> Path:
    """MRAE and RMSE against wavelength: each image thin, the mean thick (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = mean_per_band(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    for ax, key, label in zip(axes, ("mrae", "rmse"), ("MRAE", "RMSE")):
        for r in rows:
            ax.plot(r["per_band"]["wavelengths"], r["per_band"][key], color="0.6", lw=0.8)
        if mean is not None:
            ax.plot(mean["wavelengths"], mean[key], color="tab:red", lw=2, label=f"mean of {len(rows)}")
            ax.legend()
        ax.set_xlabel("wavelength (nm)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle("error per band", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, overwrite)


def error_map_paths(folder: Path, stem: str) -> list[Path]:
    """The two files :func:`write_error_maps` writes for ``stem``."""
    return [Path(folder) / f"{stem}_mrae.png", Path(folder) / f"{stem}_worst.png"]


def write_error_maps(
    pred: np.ndarray,
    gt: np.ndarray,
    folder: Path,
    stem: str,
    wavelengths: np.ndarray,
    *,
    worst: int = 4,
    eps: float | None = None,
    ignore_zeros: bool = False,
    overwrite: bool = False,
    crop: int = 0,
) -> list[Path]:
    """Write ``STEM_mrae.png`` (per-pixel MRAE as a colour map with a colour bar) and
    ``STEM_worst.png`` (ground truth vs reconstruction at the ``worst`` pixels of highest MRAE).
    ``crop``: the arrays are the image less that many pixels per border; the titles say so and
    pixels are named by their place in the whole image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [check_writable(path, overwrite) for path in error_map_paths(folder, stem)]
    emap = metrics.mrae_map(pred, gt, eps=eps, ignore_zeros=ignore_zeros)
    finite = emap[np.isfinite(emap)]
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    h, w = emap.shape
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * h / w + 0.6), layout="constrained")
    cmap = plt.get_cmap("inferno").with_extremes(bad="cyan")
    im = ax.imshow(
        np.ma.masked_invalid(emap), cmap=cmap, vmin=0, vmax=max(vmax, 1e-12), interpolation="nearest"
    )
    fig.colorbar(im, ax=ax, label="MRAE per pixel", extend="max", shrink=0.85)
    mean = float(np.mean(emap)) if not ignore_zeros else float(np.nanmean(emap))
    inner = f", {crop} px border left out" if crop else ""
    ax.set_title(f"{stem}: MRAE {mean:.4g}{inner}" + (" (cyan: inf/undefined)" if finite.size < emap.size else ""))
    ax.set_axis_off()
    save_figure(fig, targets[0], overwrite, dpi=100)

    ranked = worst_pixels(emap, worst)
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for i, (y, x) in enumerate(ranked):
        colour = f"C{i}"
        where = f"x={x + crop}, y={y + crop}"  # in the whole image
        ax.plot(wavelengths, gt[y, x], "-", color=colour, label=f"{where} ground truth, MRAE {emap[y, x]:.3g}")
        ax.plot(wavelengths, pred[y, x], "--", color=colour, label=f"{where} reconstruction")
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("value")
    ax.set_title(f"{stem}: the {len(ranked)} pixels of highest MRAE{inner}")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, targets[1], overwrite, dpi=100)
    return targets


def worst_pixels(emap: np.ndarray, n: int) -> list[tuple[int, int]]:
    """(row, column) of the ``n`` pixels of highest error in ``emap``, worst first (NaN last)."""
    ranked = np.argsort(np.where(np.isnan(emap), -np.inf, emap), axis=None)[::-1][:n]
    return [tuple(int(i) for i in np.unravel_index(flat, emap.shape)) for flat in ranked]


def _reconstruct(recon_fn: ReconFn, rgb: np.ndarray, gt: np.ndarray, what: str) -> np.ndarray:
    pred = np.asarray(recon_fn(rgb))
    try:
        metrics.check_pair(pred, gt, ("reconstruction", "ground truth"))
    except HsError as exc:
        raise HsError(f"{what}: {exc}") from None
    return pred


def evaluate_cube(
    cube: Cube,
    recon_fn: ReconFn,
    pipeline="clean",
    seed: int | np.random.SeedSequence = 0,
    *,
    clusters: int = 1000,
    eps: float | None = None,
    ignore_zeros: bool = False,
    clip_negative: bool = False,
    block: int = 4,
    clustering: str = "hstool",
    main_only: bool = False,
) -> dict:
    """The Table 3 protocol on one cube: a dict with the keys of :data:`TABLE3` and ``gt_zeros``.
    ``main_only`` reconstructs the main image alone: MRAE and RMSE, the other columns NaN.

    ``seed`` is the file's sequence: with ``file_seed(N, stem)`` (:func:`hstool.camera.file_seed`,
    as :func:`evaluate_file` derives it) noise is drawn as ``hstool simulate --seed N`` draws it for
    that file, so the main and brightness inputs equal the files that command writes (a plain
    integer seeds the sequence itself: reproducible, but not those files); the shuffle permutation
    comes from the sibling stream. Every column is a relative error, so a cube with negative values is refused
    before anything is reconstructed (:class:`~hstool.recon.metrics.NegativeGroundTruth`) unless
    ``clip_negative`` sets them to 0 first (the cube is then simulated and scored clipped).
    A pipeline with an automatic exposure (``target_mean``, the ntire2022 track) writes the same
    image at any brightness, so the brightness columns are NaN (n/a) there.
    """
    from hstool.camera import scale_brightness, shuffle_patches, simulate, track

    if getattr(recon_fn, "wavelengths", None) is not None:  # a Reconstructor knows its grid: say it plainly
        check_grids(recon_fn.wavelengths, cube.wavelengths, "the model's")
    if clip_negative:
        cube = cube.with_data(np.clip(cube.data, 0, None))
    metrics.check_nonnegative(cube.data)
    pipe = track(pipeline) if isinstance(pipeline, str) else pipeline
    noise_ss, shuffle_ss, regen_ss, cluster_ss = _file_seeds(seed)  # as simulate and score draw them
    gt = np.asarray(cube.data, np.float32)
    guard = {"eps": eps, "ignore_zeros": ignore_zeros}
    matrix = pipe.matrix(cube.wavelengths)

    rgb = simulate(cube, pipe, np.random.default_rng(noise_ss))
    pred = _reconstruct(recon_fn, rgb, gt, "main test")
    if main_only:
        row = dict.fromkeys(TABLE3, float("nan"))
        row.update(mrae=metrics.mrae(pred, gt, **guard), rmse=metrics.rmse(pred, gt), gt_zeros=metrics.gt_zeros(gt))
        return row
    row = {
        "mrae": metrics.mrae(pred, gt, **guard),
        "rmse": metrics.rmse(pred, gt),
        "physical": physical_consistency(
            cube.with_data(pred), rgb, pipe, np.random.default_rng(regen_ss), eps=eps
        ),
        "backprojection": metrics.backprojection_mrae(pred, gt, matrix, **guard),
        "weighted": weighted_mrae(pred, gt, clusters, cluster_ss, method=clustering, **guard),
    }
    for k in (0.5, 2):
        if pipe.target_mean is not None:  # its automatic exposure gives the same image at any brightness
            row[f"brightness_{k:g}"] = float("nan")
            continue
        scaled = scale_brightness(cube, k)
        rgb_k = simulate(scaled, pipe, np.random.default_rng(noise_ss))
        row[f"brightness_{k:g}"] = metrics.mrae(
            _reconstruct(recon_fn, rgb_k, scaled.data, f"brightness ×{k:g}"), scaled.data, **guard
        )
    gt_s, rgb_s = shuffle_patches(gt, rgb, block=block, rng=np.random.default_rng(shuffle_ss))
    row["spatial"] = metrics.mrae(_reconstruct(recon_fn, rgb_s, gt_s, "spatial shuffle"), gt_s, **guard)
    row["gt_zeros"] = metrics.gt_zeros(gt)
    return {k: row[k] for k in (*TABLE3, "gt_zeros")}


def evaluate_file(path: Path, recon_fn: ReconFn, pipeline="clean", seed: int | np.random.SeedSequence = 0,
                  **options) -> dict:
    """:func:`evaluate_cube` on a cube file, seeded by its stem (:func:`file_seed`); errors name the file."""
    from hstool.camera import file_seed

    path = Path(path)
    cube = read_cube(path)
    cube.meta.setdefault("source", str(path))
    try:
        row = evaluate_cube(cube, recon_fn, pipeline, file_seed(seed, path.stem), **options)
    except HsError as exc:
        if exc.path is not None:
            raise
        raise HsError(exc.message, path) from None
    return {"image": path.stem, "gt": str(path), **row}  # the path tells apart one name in two folders


def mean_row(rows: Sequence[dict], keys: Sequence[str]) -> dict:
    """Per-key mean over images (the challenge averages per-image scores)."""
    return {k: float(np.mean([r[k] for r in rows])) for k in keys if rows and all(k in r for r in rows)}


def evaluate(gt_paths: Sequence[Path] | Path | str, recon_fn: ReconFn, pipeline="clean",
             seed: int | np.random.SeedSequence = 0, **options) -> dict:
    """The Table 3 protocol over cube files (one path, or several): ``{"images": [row, ...], "mean": {...}}``."""
    paths = [gt_paths] if isinstance(gt_paths, (str, Path)) else list(gt_paths)
    _file_seeds(seed)  # a bad seed is the call's error, not each file's
    rows = [evaluate_file(p, recon_fn, pipeline, seed, **options) for p in paths]
    if not rows:
        raise HsError("no ground-truth cubes to evaluate")
    return {"images": rows, "mean": mean_row(rows, TABLE3)}


def read_pair(pred_path: Path, gt_path: Path, *, clip_negative: bool = False) -> tuple[Cube, Cube]:
    """Read a prediction and its ground truth. A shape, band or band-grid mismatch names the
    prediction file; NaN or inf values name the file that holds them. ``clip_negative`` sets
    negative ground-truth values (calibration noise) to 0; left alone, the relative errors refuse
    them (:class:`~hstool.recon.metrics.NegativeGroundTruth`) and RMSE, PSNR, SAM, SSIM take them."""
    pred, gt = read_cube(pred_path), read_cube(gt_path)
    if clip_negative:
        gt = gt.with_data(np.clip(gt.data, 0, None))
    try:
        metrics.check_finite(gt.data, "ground truth")
    except HsError as exc:
        raise HsError(exc.message, gt_path) from None
    try:
        metrics.check_pair(pred.data, gt.data)
        check_grids(pred.wavelengths, gt.wavelengths)
    except HsError as exc:
        raise HsError(f"{exc.message} (ground truth {gt_path})", pred_path) from None
    return pred, gt


def check_grids(pred: np.ndarray, gt: np.ndarray, what: str = "prediction") -> None:
    """Refuse two band grids that are not the same bands (to 0.01 nm)."""
    if pred.size != gt.size or not np.allclose(pred, gt, rtol=0, atol=0.01):
        raise HsError(f"band grids differ: {what} {_grid(pred)}, ground truth {_grid(gt)}")


def _grid(wavelengths: np.ndarray) -> str:
    return f"{wavelengths[0]:g}-{wavelengths[-1]:g} nm in {wavelengths.size} bands"
