"""``hstool convert``: cubes from one format (and band grid) to another."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from hstool.hsdata import (
    HsError,
    input_files,
    output_files,
    output_path,
    read_cube,
    write_cube,
)
from hstool.hsdata.atomic import check_output_folder
from hstool.hsdata.formats.npy import check_npy_grid
from hstool.hsdata.provenance import PROVENANCE, provenance_record, read_provenance, settings_differ
from hstool.hsdata.render import preview_image, preview_path, write_preview
from hstool.hsdata.spectral import resample_bands, target_grid

from .batch import (
    PreviewJob,
    batch_json,
    finish_skipped,
    gather_inputs,
    job_outputs,
    plan_outputs,
    refuse_other_settings,
    report_failures,
    run_batch,
)
from .options import (
    Bands,
    Cluster,
    CubeFormat,
    Extrapolate,
    Fwhm,
    InputFormat,
    Json,
    Method,
    OutOption,
    Overwrite,
    Preview,
    Workers,
    check_cube_format,
    check_input_format,
    check_resampling,
    inputs_and_output,
)
from .output import err, print_json, show, table


@dataclass
class Job:
    source: Path
    output: Path
    in_format: str | None
    format: str
    grid: np.ndarray | None
    method: str
    fwhm: float | None
    extrapolate: bool
    preview: bool
    overwrite: bool


def _preview(job: Job) -> PreviewJob:
    """Where the cube's preview goes; its units, where the output format keeps none, are the source's."""
    return PreviewJob(job.output, preview_path(job.output), units_of=job.source, units_of_format=job.in_format)


def _settings(job: Job) -> dict:
    """What decides a converted cube's numbers, as its provenance records them."""
    return {"bands": None if job.grid is None else job.grid.tolist(), "method": job.method, "fwhm": job.fwhm,
            "extrapolate": job.extrapolate}


def _differences(job: Job) -> list[str]:
    """What an earlier run's output of ``job`` was converted with otherwise (nothing where it keeps
    no record: a .npy, another program's file)."""
    made = read_provenance(job.output, "mat" if job.format == "mat5" else job.format)
    wanted = _settings(job)
    return settings_differ(made, wanted, tuple(wanted)) if made else []


def _outputs(job: Job) -> list[Path]:
    """Every file one cube's conversion writes: the cube (an ENVI pair) and its preview."""
    return output_files(job.output, job.format) + ([_preview(job)[1]] if job.preview else [])


def _raw_specim(cube) -> bool:
    """Whether a cube read is a Specim IQ capture's raw part: sensor counts, uncalibrated, in the
    sensor's orientation (what `hstool calibrate` turns into a reflectance cube)."""
    fields = cube.meta.get("envi")
    sensor = str(fields.get("sensor type", "")) if isinstance(fields, dict) else ""
    return sensor.upper().startswith("SPECIM") and cube.meta.get("file_dtype") == "uint16" and "units" not in cube.meta


def run_job(job: Job) -> dict:
    """Read, resample and write one cube (module level, so worker processes can run it)."""
    t0 = time.perf_counter()
    cube = read_cube(job.source, job.in_format)
    bands_in = cube.wavelengths.size
    record = provenance_record("convert", job.source, _settings(job), made_from=cube.meta.get(PROVENANCE))
    if job.grid is not None:
        try:
            data = resample_bands(cube.data, cube.wavelengths, job.grid, job.method, job.fwhm, job.extrapolate)
        except HsError as exc:
            raise HsError(exc.message, job.source) from None
        was = f"{bands_in} bands, {cube.wavelengths[0]:g}-{cube.wavelengths[-1]:g} nm ({job.method})"
        cube = cube.with_data(data, job.grid, resampled_from=was)
    cube.meta[PROVENANCE] = record  # what converted it, and what made the source, where it says
    with job_outputs(_outputs(job), job.overwrite):  # all of a cube's files or none
        image = preview_image(cube) if job.preview else None  # fails before the cube is written
        files = write_cube(cube, job.output, job.format, job.overwrite)
        if image is not None:
            files.append(write_preview(image, _preview(job)[1], job.overwrite))
    return {
        "input": str(job.source),
        "output": str(files[0]),
        "files": [str(f) for f in files],
        "shape": list(cube.shape),
        "bands_in": bands_in,
        "raw_specim": _raw_specim(cube),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _not_own_outputs(sources: list[Path], out: Path, format: str, in_format: str | None) -> list[Path]:
    """``sources`` less the cubes that are their own output (``convert D D``'s rerun finds the
    cubes the first run wrote, in the output format): left out with a note, not refused as an
    output that would overwrite its input (unless they are all there is)."""
    def own(src: Path) -> bool:
        mine = {p.resolve() for p in output_files(output_path(out, src.stem, format), format)}
        return mine == {p.resolve() for p in input_files(src, in_format) if p.exists()}

    kept = [src for src in sources if not own(src)]
    if not kept:  # nothing else to do: refused as an output over its input, naming the file
        return sources
    if len(kept) < len(sources):
        err.print(f"left out {len(sources) - len(kept)} cube(s) already in the output folder as {format}: each "
                  "would be its own output", style="yellow")
    return kept


def convert(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Cube files or folders, then the output folder (or --out).", metavar="[CUBES...] OUT",
        show_default=False)] = None,
    out_option: OutOption = None,
    format: CubeFormat = "mat",
    bands: Bands = "none",
    method: Method = "linear",
    fwhm: Fwhm = None,
    extrapolate: Extrapolate = False,
    in_format: InputFormat = None,
    preview: Preview = False,
    workers: Workers = 1,
    cluster: Cluster = None,  # read by its callback: run_batch sends the files to the cluster
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Convert cubes between formats (.mat v7.3 as ARAD, v5 as NTIRE 2020, ENVI, .npy, .npz), and
    with --bands resample them to another band grid; each cube is written as OUT/NAME.FORMAT.
    Values are written as float32, as the ARAD files hold them; wavelengths, units, norm_factor
    and hstool's own metadata are kept (.npy holds the array alone). An ENVI source's other header
    fields (fwhm, map info, sensor type, ...) go into ENVI and .npz copies, its per-band lists only
    while the band grid stays; its 'data ignore value' reads as NaN and its 'reflectance scale
    factor' is divided out (0-1 reflectance).

    Examples:
    $ hstool convert envi/*.hdr cubes/ -f mat --bands 400:700:10
    """
    inputs, out = inputs_and_output(paths or [], out_option)
    if out is None:
        raise typer.BadParameter("give one or more cube files or folders, then the output folder (or --out)",
                                 param_hint="CUBES... OUT")
    format = check_cube_format(format)
    grid = target_grid(bands)
    method = check_resampling(grid, method, fwhm, extrapolate)
    if grid is not None and format == "npy":
        check_npy_grid(grid)  # refused now rather than once per cube
    in_format = check_input_format(in_format)
    sources = gather_inputs(inputs, in_format=in_format)  # one per cube, however often it is named
    sources = _not_own_outputs(sources, out, format, in_format)
    jobs = [Job(src, output_path(out, src.stem, format), in_format, format, grid, method, fwhm, extrapolate,
                preview, overwrite) for src in sources]
    # two cubes that would share an output, or an output that is an input: refused here, naming them
    plan = plan_outputs(jobs, _outputs, [p for src in sources for p in input_files(src, in_format)], overwrite,
                        name=lambda j: str(j.source), preview=_preview, with_preview=preview)
    jobs, skipped = plan.todo, plan.skipped
    check_output_folder(out)
    conflicts = refuse_other_settings(plan, _differences, lambda j: j.output)
    previews, preview_failures = finish_skipped(plan, "cube(s)", workers)
    results, failures = run_batch(jobs, run_job, "converting", workers, name=lambda j: j.source.name)
    rows = [r for _, r in results]
    failures = conflicts + failures
    if json:
        print_json(batch_json(plan, rows, [str(j.output) for j in skipped],
                              [{"input": str(f.item.source), "error": f.message} for f in failures], previews,
                              preview_failures))
    elif rows:
        show(table(f"{len(rows)} cube(s) in {out}", ["input", "output", "shape", "bands in", "s"],
                        [[Path(r["input"]).name, Path(r["output"]).name, "x".join(map(str, r["shape"])),
                          r["bands_in"], r["seconds"]] for r in rows]))
    raw = [Path(r["input"]).name for r in rows if r["raw_specim"]]
    if raw:
        err.print(f"{len(raw)} input(s) are raw Specim IQ capture parts ({', '.join(raw[:3])}{', ...' if len(raw) > 3 else ''}):"
                  " sensor counts in the sensor's orientation, not calibrated; `hstool calibrate CAPTURES OUT` makes "
                  "reflectance cubes of them", style="yellow")
    code = report_failures(failures + preview_failures, len(jobs) + len(plan.previews) + len(conflicts), plan)
    if code:
        raise typer.Exit(code)
