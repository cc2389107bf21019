"""Options shared by several commands, declared once (rasterio's ``rio/options.py`` style)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata import CUBE_FORMATS, HsError, detect_format
from hstool.hsdata.errors import check_positive
from hstool.hsdata.spectral import check_method

from . import cluster

Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of a table.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (never an input).")]
Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes for batches.")]
Cluster = Annotated[str | None, typer.Option(
    "--cluster", envvar="HSTOOL_CLUSTER", callback=cluster.use, show_envvar=True, help=(
        "Run the batch on a Dask cluster: the scheduler's address (tcp://host:8786), or local:N for N worker "
        "processes here. The workers must see the files at the same paths. Needs hstool[cluster]."))]
Seed = Annotated[int, typer.Option("--seed", min=0, help=(
    "Seed of every random step, for reproducible output (a batch draws each file's stream from it and the file's "
    "name, hstool.camera.file_seed: the same bytes in any order or worker count)."))]
Npe = Annotated[float | None, typer.Option("--npe", help="Mean photo-electrons at the green sites (noise level).")]
NoNoise = Annotated[bool, typer.Option("--no-noise", help="Switch all sensor noise off.")]
DarkNoiseQuirk = Annotated[bool, typer.Option(
    "--dark-noise-quirk", help="Organisers' behaviour: std = dark_noise**2 (NTIRE 2020 code).")]


def noise_settings(pipe, npe: float | None, no_noise: bool, quirk: bool):
    """``pipe`` with the noise options applied (--npe, --no-noise, --dark-noise-quirk), checked:
    --npe and --no-noise exclude each other, and the quirk needs sensor noise."""
    if no_noise and npe is not None:
        raise HsError("--npe sets the noise that --no-noise switches off: give one of them")
    if npe is not None:
        check_positive(npe, "--npe")
        pipe = pipe.replace(npe=npe)
    if no_noise:
        pipe = pipe.replace(npe=None)
    if quirk:
        if pipe.npe is None:
            raise HsError("--dark-noise-quirk acts only with sensor noise: " + (
                "drop --no-noise" if no_noise else "use the realworld or ntire2022 track, or --npe"))
        pipe = pipe.replace(dark_noise_quirk=True)
    return pipe


Clustering = Annotated[str, typer.Option("--clustering", help=(
    "k-means of the weighted MRAE: hstool (fast, converged) or organisers (scikit-learn's MiniBatchKMeans as the "
    "organisers ran it: comparable with their Weighted numbers; needs scikit-learn)."))]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N.")]
CubeFormat = Annotated[
    str, typer.Option("--format", "-f", help="Output cube format: mat (ARAD v7.3), mat5, envi, npy, npz.")
]
InputFormat = Annotated[
    str | None, typer.Option("--in-format", help="Force the input cubes' format (mat, envi, npy, npz).")
]
Preview = Annotated[bool, typer.Option("--preview", help="Also write an sRGB PNG preview of each cube.")]
OutDir = Annotated[Path, typer.Argument(help="Output folder (created if missing).", file_okay=False)]
Bands = Annotated[str, typer.Option(
    "--bands", help="Target band grid (nm): START:STOP:STEP or a comma list; 'none' keeps the source's own.")]
Method = Annotated[str, typer.Option(
    "--method", help="Resampling: linear (at band centres), gaussian or triangular (band integration).")]
Fwhm = Annotated[float | None, typer.Option(
    "--fwhm", help="Width (nm) of the gaussian/triangular response; default the grid step.")]
Extrapolate = Annotated[bool, typer.Option(
    "--extrapolate", help="Allow target bands outside the source's range (linear holds the edge values; the "
    "integrating methods use what their response still covers).")]
ClipNegativeTruth = Annotated[bool, typer.Option("--clip-negative", help=(
    "Clip negative ground-truth values (calibration noise) to 0 first; those zeros then follow "
    "--eps / --ignore-zeros (inf MRAE without). Without it they fail the MRAE-based metrics: never "
    "clipped silently, not even within simulate's 5% noise rule, since clipping changes the MRAE."))]

#: what --format takes (``mat5``: MATLAB v5, which hsdata's writers take as a format name too)
OUTPUT_FORMATS = (*CUBE_FORMATS, "mat5")


def check_resampling(grid, method: str, fwhm: float | None, extrapolate: bool) -> str:
    """--method, --fwhm and --extrapolate checked once, before any work; they act only with a
    target grid (--bands), so without one they are refused rather than ignored. Returns the
    method's name in lower case (as --to and --track, any case is taken)."""
    method = method.lower()
    check_method(method)  # a known name first
    if grid is None and (method != "linear" or fwhm is not None or extrapolate):
        raise HsError("--method, --fwhm and --extrapolate act with --bands (a target grid), not without one")
    check_method(method, fwhm)
    return method


def check_cube_format(format: str) -> str:
    """``--format`` checked before any work; returned in lower case (MAT is mat)."""
    if format.lower() not in OUTPUT_FORMATS:
        raise HsError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, not '{format}'")
    return format.lower()


def weights_track(weights: Path | None, track: str | None) -> str:
    """The track of ``--track`` next to ``--weights``: a weights file knows its own track, which is
    the default, and another one given beside it is a slip and refused; without a file, ``--track``
    or ``clean``."""
    from hstool.camera.pipeline import track_name

    if track is not None:
        track = track_name(track)  # any spelling: Real-World is realworld
    own = None
    if weights is not None:
        from hstool.recon import read_metadata

        own = read_metadata(weights).get("track")
        try:
            own = track_name(own) if own else None
        except HsError:
            own = None  # a track hstool does not know: nothing to hold --track to
        if own and track and own != track:
            raise HsError(f"--track {track}: these weights were trained for the {own} track (drop --track)", weights)
    return track or own or "clean"


def check_clustering(name: str) -> str:
    """``--clustering`` in lower case, refused when it names no method."""
    from hstool.recon.clusters import METHODS

    if name.lower() not in METHODS:
        raise HsError(f"--clustering must be {' or '.join(METHODS)}, not '{name}'")
    return name.lower()


def as_option_error(exc: HsError, fields) -> HsError:
    """``exc`` with the library's parameter name it starts with (``npe must be ...``) written as
    the command-line option the user typed (``--npe must be ...``); ``exc`` itself otherwise."""
    field = next((f for f in fields if exc.message.startswith(f + " ")), None)
    if field is None:
        return exc
    return HsError("--" + field.replace("_", "-") + exc.message[len(field):], exc.path)


def check_input_format(in_format: str | None) -> str | None:
    """``--in-format`` checked before any work: a cube format (the commands that take it read
    cubes); returned in lower case."""
    if in_format is None:
        return None
    in_format = detect_format("", in_format)  # the name alone, lower-cased
    if in_format == "image":
        raise HsError("--in-format image: this command reads hyperspectral cubes (mat, envi, npy, npz), not RGB images")
    return in_format

