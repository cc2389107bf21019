"""Options shared by several commands, declared once (rasterio's ``rio/options.py`` style)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hstool.hsdata.errors import HsError, check_positive

from . import cluster

#: the help panels that group options (besides the default "Options")
IO, CAMERA, MODEL, PERF = "Input/output", "Camera", "Model", "Performance"

Json = Annotated[bool, typer.Option("--json", help="JSON on stdout instead of a table.", rich_help_panel=IO)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (never an input).",
                                         rich_help_panel=IO)]
Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.", rich_help_panel=PERF)]
Cluster = Annotated[str | None, typer.Option(
    "--cluster", envvar="HSTOOL_CLUSTER", callback=cluster.use, show_envvar=False, rich_help_panel=PERF,
    help="Dask scheduler tcp://HOST:8786, or local:N (env HSTOOL_CLUSTER).")]
#: a file's random stream comes from the seed and its name (hstool.camera.file_seed): the same bytes in any
#: order or worker count
Seed = Annotated[int, typer.Option("--seed", min=0, help="Seed of every random step (per file, by its name).")]
Npe = Annotated[float | None, typer.Option("--npe", help="Mean photo-electrons at green sites (noise).",
                                           rich_help_panel=CAMERA)]
NoNoise = Annotated[bool, typer.Option("--no-noise", help="Switch all sensor noise off.", rich_help_panel=CAMERA)]
DarkNoiseQuirk = Annotated[bool, typer.Option(
    "--dark-noise-quirk", help="Organisers' dark noise: std = dark_noise**2.", rich_help_panel=CAMERA)]


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


#: organisers: scikit-learn's MiniBatchKMeans as the organisers ran it, comparable with their Weighted numbers
Clustering = Annotated[str, typer.Option("--clustering", help="Weighted MRAE's k-means: hstool or organisers.")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA if present), cpu, cuda, cuda:N.",
                                      rich_help_panel=PERF)]
CubeFormat = Annotated[
    str, typer.Option("--format", "-f", help="Cube format: mat (v7.3), mat5, envi, npy, npz.", rich_help_panel=IO)
]
InputFormat = Annotated[
    str | None, typer.Option("--in-format", help="Read inputs as mat, envi, npy or npz.", rich_help_panel=IO)
]
Preview = Annotated[bool, typer.Option("--preview", help="Also write NAME_preview.png (sRGB).", rich_help_panel=IO)]
OutDir = Annotated[Path | None, typer.Argument(help="Output folder (or --out).", show_default=False)]
#: every command that writes a folder takes it last or as --out (recon: only --out, its inputs may be folders)
#: (a file given as the folder is refused by the command, one line naming it, as every bad output is)
OutOption = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (or give it last).",
                                                rich_help_panel=IO)]


def one_output(out: Path | None, out_option: Path | None) -> Path:
    """The output folder given as the last argument or as --out, once."""
    if (out is None) == (out_option is None):
        raise typer.BadParameter("give the output folder once: last, or as --out", param_hint="OUT")
    return out or out_option


def inputs_and_output(paths: list[Path], out_option: Path | None) -> tuple[list[Path], Path | None]:
    """The inputs and the output folder of ``CUBES... OUT`` or ``CUBES... --out OUT`` (no inputs:
    this folder's); with neither, this folder and None (no output folder). One path alone is refused:
    the inputs without an output folder, or an output folder without inputs?"""
    if out_option is not None:
        return paths or [Path(".")], out_option
    if len(paths) == 1:
        raise typer.BadParameter("give one or more cube files or folders, then the output folder (or --out)",
                                 param_hint="CUBES... OUT")
    return (paths[:-1], paths[-1]) if paths else ([Path(".")], None)
Bands = Annotated[str, typer.Option(
    "--bands", help="Band grid (nm): START:STOP:STEP, a list, or 'none'.")]
Method = Annotated[str, typer.Option(
    "--method", help="Resampling: linear, gaussian or triangular.")]
Fwhm = Annotated[float | None, typer.Option(
    "--fwhm", help="Band width (nm) of gaussian/triangular; default the step.")]
Extrapolate = Annotated[bool, typer.Option(
    "--extrapolate", help="Allow bands outside the source's range.")]
#: never clipped silently, not even within simulate's 5% noise rule, since clipping changes the MRAE
ClipNegativeTruth = Annotated[bool, typer.Option("--clip-negative", help="Clip negative ground truth to 0 first.")]



def output_formats() -> tuple[str, ...]:
    """What --format takes (``mat5``: MATLAB v5, which hsdata's writers take as a format name too);
    a function, so that importing the options does not import the file formats' libraries."""
    from hstool.hsdata import CUBE_FORMATS

    return (*CUBE_FORMATS, "mat5")


def check_resampling(grid, method: str, fwhm: float | None, extrapolate: bool) -> str:
    """--method, --fwhm and --extrapolate checked once, before any work; they act only with a
    target grid (--bands), so without one they are refused rather than ignored. Returns the
    method's name in lower case (as --to and --track, any case is taken)."""
    from hstool.hsdata.spectral import check_method

    method = method.lower()
    check_method(method)  # a known name first
    if grid is None and (method != "linear" or fwhm is not None or extrapolate):
        raise HsError("--method, --fwhm and --extrapolate act with --bands (a target grid), not without one")
    check_method(method, fwhm)
    return method


def check_cube_format(format: str) -> str:
    """``--format`` checked before any work; returned in lower case (MAT is mat)."""
    if format.lower() not in output_formats():
        raise HsError(f"--format must be one of {', '.join(output_formats())}, not '{format}'")
    return format.lower()


def weights_track(weights: Path | None, track: str | None, default: str | None = "clean") -> str | None:
    """The track of ``--track`` next to ``--weights``: a weights file knows its own track, which is
    the default, and another one given beside it is a slip and refused; without a file, ``--track``
    or ``default`` (``recon`` gives None: each image's own, :func:`hstool.camera.image_track`)."""
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
    return track or own or default


def weights_file(value: str | Path | None) -> Path | None:
    """``--weights`` / ``--init``: a weights file, or bundled weights by NAME:TRACK (mstpp_s:clean)."""
    from hstool.recon.catalog import weights_file as find

    if value is None or isinstance(value, Path):
        return value
    try:
        return find(value)
    except HsError as exc:
        raise typer.BadParameter(str(exc)) from None


#: how --weights and --init show their value in --help
WEIGHTS_METAVAR = "FILE|NAME:TRACK"


def require_extra(what: str, extra: str, *modules: str) -> None:
    """Refuse ``what`` once, before any work, when the optional ``modules`` are not installed, naming
    the extra that installs them (rather than one failure per file)."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in modules):
        raise HsError(f'{what} needs {" and ".join(modules)}: pip install "hstool[{extra}]"')


def check_clustering(name: str) -> str:
    """``--clustering`` in lower case, refused when it names no method or its package is missing."""
    from hstool.recon.clusters import METHODS

    if name.lower() not in METHODS:
        raise HsError(f"--clustering must be {' or '.join(METHODS)}, not '{name}'")
    if name.lower() == "organisers":
        require_extra("--clustering organisers", "organisers", "sklearn")
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
    from hstool.hsdata import detect_format

    if in_format is None:
        return None
    in_format = detect_format("", in_format)  # the name alone, lower-cased
    if in_format == "image":
        raise HsError("--in-format image: this command reads hyperspectral cubes (mat, envi, npy, npz), not RGB images")
    return in_format

