"""``hstool evaluate``: the NTIRE 2020 report's extended evaluation (Table 3) of a model in one command."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata import HsError, read_cube
from hstool.hsdata.errors import check_positive
from hstool.recon import evaluate as ev

from .batch import gather_inputs, run_batch
from .options import (
    ClipNegativeTruth,
    Cluster,
    Clustering,
    DarkNoiseQuirk,
    Device,
    Json,
    NoNoise,
    Npe,
    Seed,
    check_clustering,
    noise_settings,
    weights_track,
)
from .output import HEADERS, err, print_json, show, table
from .score import warn_infinite

Opt = typer.Option


def _check_some_grid_fits(paths: list[Path], wavelengths) -> None:
    """A model on another band grid than every cube fails once, not once per file; a folder where
    some cubes fit goes on, and the others fail one by one, named (a batch carries on)."""
    first_error = None
    for path in paths:
        try:
            cube = read_cube(path, dtype=None)
        except HsError:
            continue  # an unreadable file is the batch's to report, with the others still scored
        try:
            ev.check_grids(wavelengths, cube.wavelengths, "the model's")
            return
        except HsError as exc:
            first_error = first_error or HsError(exc.message, path)
    if first_error is not None:
        raise first_error


def evaluate(
    gt: Annotated[list[Path], typer.Argument(help="Ground-truth cube files or folders.")],
    model: Annotated[str | None, Opt("--model", "-m", help="Model name (see `hstool models`); optional with a "
                                     "weights file, which names its model.")] = None,
    track_name: Annotated[
        str | None, Opt("--track", "-t", help="Simulated camera: clean, realworld or ntire2022; default the weights "
                        "file's own track, else clean.")
    ] = None,
    weights: Annotated[
        str, Opt("--weights", "-w", help="bundled, a file, NAME:TRACK or none (untrained).")
    ] = "bundled",
    limit: Annotated[int | None, Opt("--limit", min=1, help="Evaluate only the first N cubes.")] = None,
    clusters: Annotated[
        int, Opt("--clusters", min=1, help="Clusters of the weighted MRAE (k-means seeded by --seed and the file name).")
    ] = 1000,
    eps: Annotated[float | None, Opt("--eps", help="Guarded MRAE: divide by gt + EPS.")] = None,
    ignore_zeros: Annotated[bool, Opt("--ignore-zeros", help="Guarded MRAE: leave gt zeros out.")] = False,
    clip_negative: ClipNegativeTruth = False,
    device: Device = "auto",
    clustering: Clustering = "hstool",
    npe: Npe = None,
    no_noise: NoNoise = False,
    dark_noise_quirk: DarkNoiseQuirk = False,
    seed: Seed = 0,
    cluster: Cluster = None,  # read by its callback: run_batch sends the files to the cluster
    json: Json = False,
) -> None:
    """Run the NTIRE 2020 extended evaluation (Table 3 of the challenge report) on ground-truth cubes:
    simulate each cube's RGB on the track, reconstruct and score (MRAE, RMSE); repeat with the cube
    ×0.5 and ×2 as bright and with 4×4 patches shuffled; physical consistency (the reconstruction
    re-imaged by the same camera vs the input; back-projection vs the ground truth) and the weighted
    MRAE over 1000 spectral clusters. Noise is seeded per file as `hstool simulate --seed` seeds it.
    A cube with negative values (calibration noise) is refused unless --clip-negative.

    Examples:
    $ hstool evaluate --model mstpp_s --track realworld gt/ --limit 10 --json
    """
    from hstool.camera import track
    from hstool.recon import Reconstructor

    check_positive(eps, "--eps", zero=True)
    ev.metrics.check_guard(eps, ignore_zeros)
    clustering = check_clustering(clustering)
    w = None if weights.lower() == "none" else "bundled" if weights.lower() == "bundled" else weights
    if w not in (None, "bundled"):
        from hstool.recon.catalog import weights_file

        w = str(weights_file(w))  # a file, or bundled weights by NAME:TRACK
    if model is None and w in (None, "bundled"):
        raise HsError(f"give --model NAME: --weights {weights} names no model")
    # a weights file's own track unless --track says another, which is refused (as recon does)
    pipe = track(weights_track(Path(w), track_name) if w not in (None, "bundled") else track_name or "clean")
    pipe = noise_settings(pipe, npe, no_noise, dark_noise_quirk)  # the images' noise; the model stays the track's
    paths = gather_inputs(gt)[:limit]
    recon = Reconstructor(model, weights=w, track=pipe.name, device=device)
    model = model or recon.spec.name
    _check_some_grid_fits(paths, recon.wavelengths)
    job = functools.partial(
        ev.evaluate_file,
        recon_fn=recon,
        pipeline=pipe,
        seed=seed,
        clusters=clusters,
        clustering=clustering,
        eps=eps,
        ignore_zeros=ignore_zeros,
        clip_negative=clip_negative,
    )
    results, failures = run_batch(paths, job, f"evaluate {model} ({pipe.name})", workers=1)
    rows = [r for _, r in results]
    mean = ev.mean_row(rows, ev.TABLE3)
    warn_infinite(rows, ev.TABLE3)
    if json:
        print_json(
            {
                "model": model,
                "weights": weights,
                "track": pipe.name,
                "pipeline": pipe.describe(),
                "seed": seed,
                "clusters": clusters,
                "clustering": clustering,
                "images": rows,
                "mean": mean,
                "failed": [{"gt": str(f.item), "error": f.message} for f in failures],
            }
        )
    elif rows:
        body = [[r["image"], *[r[k] for k in ev.TABLE3]] for r in rows] + [
            ["mean", *[mean[k] for k in ev.TABLE3]]
        ]
        show(
            table(
                f"{model}, {pipe.name} track, seed {seed}: NTIRE 2020 Table 3 protocol (every column an MRAE but RMSE; "
                "×0.5/×2: brightness)",
                ["image", *(HEADERS[k] for k in ev.TABLE3)],
                body,
            )
        )
    if rows and pipe.target_mean is not None:
        err.print(f"the {pipe.name} track sets its exposure from each image's mean, which undoes a brightness "
                  "change: the ×0.5 and ×2 columns are n/a (nan; null in --json)", style="yellow")
    if failures:
        err.print(f"[bold red]{len(failures)} of {len(paths)} cube(s) failed[/]", markup=True)
        raise typer.Exit(1)
