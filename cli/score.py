"""``hstool score``: the challenge metrics of reconstructions against ground truth."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hstool.camera import file_seed
from hstool.hsdata import HsError, atomic_path, check_writable, list_files, read_rgb
from hstool.hsdata.atomic import check_output_folder
from hstool.hsdata.errors import check_positive
from hstool.recon import evaluate as ev

from .batch import run_batch
from .options import ClipNegativeTruth, Cluster, Clustering, Json, Overwrite, Seed, Workers, check_clustering
from .output import HEADERS, err, print_json, show, table

Opt = typer.Option


@dataclass
class Job:
    pred: Path
    gt: Path
    metrics: tuple[str, ...]
    crop: int
    eps: float | None
    ignore_zeros: bool
    clip_negative: bool
    pipeline: Any  # hstool.camera.Pipeline or None
    rgb: Path | HsError | None  # the input image, or why it was not found
    maps: Path | None
    overwrite: bool
    clusters: int
    clustering: str
    seed: int
    per_band: bool = False


def run_job(job: Job) -> dict:
    """Read and score one pair (module level, so worker processes can run it)."""
    if isinstance(job.rgb, HsError):
        raise job.rgb
    pred, gt = ev.read_pair(job.pred, job.gt, clip_negative=job.clip_negative)
    rgb = read_rgb(job.rgb) if job.rgb is not None else None
    try:
        row = ev.score_pair(
            pred,
            gt,
            job.metrics,
            crop=job.crop,
            eps=job.eps,
            ignore_zeros=job.ignore_zeros,
            pipeline=job.pipeline,
            rgb=rgb,
            clusters=job.clusters,
            clustering=job.clustering,
            seed=file_seed(job.seed, job.gt.stem),
            per_band=job.per_band,
        )
        if job.maps is not None:
            p, g = ev.metrics.crop(pred.data, job.crop), ev.metrics.crop(gt.data, job.crop)
            ev.write_error_maps(
                p,
                g,
                job.maps,
                job.gt.stem,
                gt.wavelengths,
                eps=job.eps,
                ignore_zeros=job.ignore_zeros,
                overwrite=job.overwrite,
                crop=job.crop,
            )
    except HsError as exc:
        if exc.path is not None:
            raise
        if isinstance(exc, ev.metrics.NegativeGroundTruth):
            raise HsError(exc.message, job.gt) from None
        raise HsError(exc.message, job.rgb if "RGB" in exc.message else job.pred) from None
    return {"image": job.gt.stem, "pred": str(job.pred), "gt": str(job.gt), **row}


def _find_rgb(images: list[Path], stem: str, suffix: str) -> Path | HsError:
    """The pair's input image, or the error that fails this pair alone."""
    try:
        return ev.find_rgb(images, stem, suffix)
    except HsError as exc:
        return exc


def _plot_per_band(rows: list[dict], maps: Path, overwrite: bool) -> str | None:
    """maps/per_band.png, kept when it exists (as the error maps are) unless ``overwrite``."""
    path = maps / "per_band.png"
    if path.exists() and not overwrite:
        err.print(f"{path} exists and is kept (use --overwrite to replace it)")
        return None
    return str(ev.plot_per_band(rows, path, overwrite))


def _ambiguous(lone_pred: list[Path], lone_gt: list[Path]) -> list[str]:
    """Why an unpaired prediction (or ground truth) found no partner although files on the other
    side share its stem but for a track suffix: there were several (X_clean and X_RealWorld), and
    picking one would be a guess."""
    from hstool.camera.pipeline import strip_track_suffix

    lines = []
    for one, others in ((lone_pred, lone_gt), (lone_gt, lone_pred)):
        for p in one:
            rivals = [o.name for o in others if strip_track_suffix(o.stem) == strip_track_suffix(p.stem)]
            if len(rivals) > 1:
                lines.append(f"{p.name} could pair with {' or '.join(rivals)}: ambiguous, so with neither "
                             "(score one track's files at a time)")
    return lines


def warn_infinite(rows: list[dict], keys: tuple[str, ...]) -> None:
    """Say which images scored an infinite MRAE because their ground truth holds zeros."""
    for r in rows:
        if r["gt_zeros"] and any(r.get(k) == float("inf") for k in keys):
            err.print(
                f"{r['image']}: MRAE is inf: the ground truth has {r['gt_zeros']} zero values "
                "(organisers' definition; --eps or --ignore-zeros give a finite score)", style="yellow"
            )


def score(
    pred: Annotated[Path, typer.Argument(help="Reconstructed cube file or folder.")],
    gt: Annotated[Path, typer.Argument(help="Ground-truth cube file or folder (paired by file stem; two files named are one pair whatever their names).")],
    metrics: Annotated[
        str, Opt("--metrics", "-m", help="Comma list of mrae, rmse, psnr, sam, ssim, weighted.")
    ] = "mrae,rmse,psnr,sam",
    crop: Annotated[
        int, Opt("--crop", min=0, help="Drop N px from each border first (NTIRE 2022: 128).")
    ] = 0,
    eps: Annotated[float | None, Opt("--eps", help="Guarded MRAE: divide by gt + EPS.")] = None,
    ignore_zeros: Annotated[bool, Opt("--ignore-zeros", help="Guarded MRAE: leave gt zeros out.")] = False,
    clip_negative: ClipNegativeTruth = False,
    rgb: Annotated[
        Path | None, Opt("--rgb", help="Input RGB folder (X.mat with X_clean.png, X_RealWorld.jpg, ... by --track): add physical consistency.", file_okay=False)
    ] = None,
    css: Annotated[
        str | None, Opt("--css", help="Camera CSS for back-projection (clean-track units).")
    ] = None,
    track_name: Annotated[
        str | None, Opt("--track", "-t", help="Track whose camera projects: clean, realworld, ntire2022.")
    ] = None,
    maps: Annotated[
        Path | None,
        Opt("--maps", help="Write MRAE error maps and worst-pixel spectra here.", file_okay=False),
    ] = None,
    csv_path: Annotated[
        Path | None, Opt("--csv", help="Also write the table as CSV.", dir_okay=False)
    ] = None,
    clusters: Annotated[
        int, Opt("--clusters", min=1, help="Clusters of the weighted MRAE (k-means seeded by --seed and the file name).")
    ] = 1000,
    clustering: Clustering = "hstool",
    strict: Annotated[bool, Opt("--strict", help=(
        "Every file must pair, as a submission check: an unpaired prediction or ground truth fails the run "
        "(exit 1) after the pairs are scored."))] = False,
    per_band: Annotated[bool, Opt("--per-band", help=(
        "Also each band's MRAE and RMSE (JSON, CSV columns, a table of their means; with --maps a plot, "
        "per_band.png)."))] = False,
    seed: Seed = 0,
    workers: Workers = 1,
    cluster: Cluster = None,  # read by its callback: run_batch sends the files to the cluster
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Score reconstructions as the NTIRE challenges did: MRAE (no epsilon: a zero in the ground truth
    gives inf, see --eps / --ignore-zeros), RMSE, PSNR, SAM, SSIM and the weighted MRAE of 1000
    spectral clusters; with --css/--track the back-projection MRAE (pred and gt through the camera's
    linear map), with --rgb also the physical consistency: the reconstruction run through the
    track's pipeline again and compared with its input image (ARAD_HS_0451 ↔ ARAD_HS_0451_clean.png).
    A ground truth with negative values (calibration noise) fails the MRAE-based metrics unless
    --clip-negative.

    Examples:
    $ hstool score pred/ gt/ > scores.txt
    $ hstool score recon/ gt/ -m mrae,rmse,weighted --rgb rgb/ --track clean --maps maps/
    """
    check_positive(eps, "--eps", zero=True)
    ev.metrics.check_guard(eps, ignore_zeros)
    clustering = check_clustering(clustering)
    names = tuple(m.strip().lower() for m in metrics.split(",") if m.strip())
    bad = [m for m in names if m not in ev.SCORE_METRICS]
    if bad or not names:
        raise HsError(
            f"unknown metric(s) {', '.join(bad) or '(none)'} (known: {', '.join(ev.SCORE_METRICS)})"
        )
    pipeline = None
    if css is not None or track_name is not None or rgb is not None:
        from hstool.camera import track

        pipeline = track(track_name or "clean", **({"css": css} if css else {}))
    # two files named are a pair whatever their names; files found in folders pair by name
    pairs, lone_pred, lone_gt = ev.pair_files(list_files(pred), list_files(gt), any_name=pred.is_file() and gt.is_file())
    for side, lone in (("predictions", lone_pred), ("ground truths", lone_gt)):
        if lone:
            err.print(f"[yellow]{len(lone)} unpaired {side}:[/] " + escape(", ".join(p.name for p in lone)), markup=True)
    ambiguous = _ambiguous(lone_pred, lone_gt)
    for line in ambiguous if pairs else ():  # without pairs, the error says it
        err.print(line, style="yellow")
    if not pairs:
        raise HsError(f"no pairs: {ambiguous[0]}" if ambiguous else f"no pairs: no file stem in {pred} matches one in {gt}")
    images = list_files(rgb, kinds=("image",)) if rgb is not None else []
    if csv_path is not None:
        inputs = tuple(p for pair in pairs for p in pair)
        if csv_path.exists() and not overwrite and csv_path.resolve() not in {p.resolve() for p in inputs}:
            err.print(f"{csv_path} exists and is kept (use --overwrite to replace it)")
            csv_path = None
        else:
            check_writable(csv_path, overwrite, inputs)
            check_output_folder(csv_path.parent)  # before the scoring, not after it
    jobs = [
        Job(
            p,
            g,
            names,
            crop,
            eps,
            ignore_zeros,
            clip_negative,
            pipeline,
            _find_rgb(images, g.stem, pipeline.suffix) if rgb is not None else None,
            maps,
            overwrite,
            clusters,
            clustering,
            seed,
            per_band,
        )
        for p, g in pairs
    ]
    if maps is not None:
        check_output_folder(maps)
    if maps is not None and not overwrite:  # existing maps are kept; their images are still scored
        kept = [j for j in jobs if any(f.exists() for f in ev.error_map_paths(maps, j.gt.stem))]
        for j in kept:
            j.maps = None
        if kept:
            err.print(f"error maps of {len(kept)} image(s) exist and are kept (use --overwrite to redo them)")
    results, failures = run_batch(jobs, run_job, "score", workers, name=lambda j: j.gt.name)
    rows = [r for _, r in results]
    columns = [*names, *(["backprojection"] if pipeline is not None else []),
               *(["physical", "physical_linear"] if rgb else [])]
    mean = ev.mean_row(rows, columns)
    band_mean = ev.mean_per_band(rows) if per_band else None
    if per_band and rows and band_mean is None:
        err.print("the images have different band grids: no per-band mean", style="yellow")
    warn_infinite(rows, ("mrae", "weighted", "backprojection"))
    if csv_path is not None and rows:
        # one column per wavelength any image has: images on other grids leave the others blank
        grid = sorted({w for r in rows for w in r["per_band"]["wavelengths"]}) if per_band else []
        bands = [f"{m}_{w:g}nm" for m in ("mrae", "rmse") for w in grid]

        def per_band_cells(r: dict) -> list[str]:
            if not grid:
                return []
            if not r.get("per_band"):
                return [""] * len(bands)
            at = {m: dict(zip(r["per_band"]["wavelengths"], r["per_band"][m])) for m in ("mrae", "rmse")}
            return [repr(at[m][w]) if w in at[m] else "" for m in ("mrae", "rmse") for w in grid]

        with atomic_path(csv_path, overwrite) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", *columns, *bands, "pred", "gt"])
            w.writerows([[r["image"], *[repr(r[c]) for c in columns], *per_band_cells(r), r["pred"], r["gt"]]
                         for r in rows])
            w.writerow(["mean", *[repr(mean[c]) for c in columns], *per_band_cells({"per_band": band_mean}), "", ""])
    plot = _plot_per_band(rows, maps, overwrite) if per_band and maps is not None and rows else None
    if json:
        print_json(
            {
                "images": rows,
                "mean": mean,
                "metrics": columns,
                "crop": crop,
                # what the scores depend on besides the files
                "settings": {"seed": seed, "eps": eps, "ignore_zeros": ignore_zeros, "clip_negative": clip_negative,
                             "clusters": clusters, "clustering": clustering,
                             "pipeline": pipeline.describe() if pipeline is not None else None},
                **({"mean_per_band": band_mean, "per_band_plot": plot} if per_band else {}),
                "unpaired": {"pred": [str(p) for p in lone_pred], "gt": [str(p) for p in lone_gt]},
                "failed": [{"pred": str(f.item.pred), "error": f.message} for f in failures],
            }
        )
    elif rows:
        body = [[r["image"], *[r[c] for c in columns]] for r in rows] + [
            ["mean", *[mean[c] for c in columns]]
        ]
        show(
            table(
                f"{len(rows)} image(s)" + (f", {crop} px border cropped" if crop else ""),
                ["image", *[HEADERS[c] for c in columns]],
                body,
            )
        )
        if band_mean is not None:
            show(table(f"per band, mean of {len(rows)} image(s)", ["nm", "MRAE", "RMSE"],
                            [[f"{w:g}", m, r] for w, m, r in zip(*(band_mean[k] for k in ("wavelengths", "mrae", "rmse")))]))
        if plot is not None:
            err.print(f"wrote {plot}")
    if failures:
        err.print(f"[bold red]{len(failures)} of {len(jobs)} pair(s) failed[/]", markup=True)
    if strict and (lone_pred or lone_gt):
        err.print(f"[bold red]--strict: {len(lone_pred)} prediction(s) and {len(lone_gt)} ground truth(s) "
                  "have no partner[/]", markup=True)
    if failures or (strict and (lone_pred or lone_gt)):
        raise typer.Exit(1)
