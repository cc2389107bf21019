"""``hstool calibrate``: Specim IQ capture folders to calibrated cubes (ARAD layout by default)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Annotated

import typer

from ..camera.calibration import calibrate as calibrate_capture
from ..camera.calibration import check_options, parse_columns
from ..hsdata import HsError, input_files, output_files, output_path, write_cube
from ..hsdata.atomic import check_output_folder
from ..hsdata.formats.npy import check_npy_grid
from ..hsdata.provenance import PROVENANCE, provenance_record, read_provenance, settings_differ, write_sidecar
from ..hsdata.render import preview_image, preview_path, write_preview
from ..hsdata.specim import IQ_WAVELENGTHS, capture_files, find_captures
from ..hsdata.spectral import resampling_matrix, target_grid
from .batch import (
    PreviewJob,
    batch_json,
    finish_skipped,
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
    Json,
    Method,
    OutDir,
    OutOption,
    Overwrite,
    Preview,
    Workers,
    check_cube_format,
    check_resampling,
    one_output,
)
from .output import err, print_json, show, table

#: the folders of a capture the camera writes; an output in one would mix with its files
CAMERA_FOLDERS = ("capture", "metadata", "results")


def _process(item: tuple[Path, Path], options: dict) -> dict:
    """Calibrate one capture and write cube, sidecar JSON (all metadata) and optional preview."""
    folder, target = item
    start = time.perf_counter()
    cube = calibrate_capture(
        folder, to=options["to"], drop_columns=options["drop"], bands=options["bands"],
        method=options["method"], fwhm=options["fwhm"], extrapolate=options["extrapolate"], gain=options["gain"],
    )
    cube.meta[PROVENANCE] = provenance_record("calibrate", folder, _settings(options))
    overwrite = options["overwrite"]
    fmt = options["format"]
    with job_outputs(_outputs(target, fmt, options["preview"]), overwrite):  # all or none of a capture's files
        image = preview_image(cube) if options["preview"] else None  # fails before the cube is written
        files = write_cube(cube, target, fmt, overwrite)
        files.append(write_sidecar(cube, target, overwrite))
        if image is not None:
            files.append(write_preview(image, preview_path(target), overwrite))
    return {
        "capture": str(folder),
        "output": str(files[0]),
        "files": [str(f) for f in files],
        "shape": list(cube.shape),
        "dropped_columns": cube.meta["dropped_columns"],  # as the sidecar lists them
        "nan_values": cube.meta["nan_values"],
        "saturated_values": cube.meta["saturated_values"],
        "white_saturated_cells": cube.meta.get("white_saturated_cells", 0),
        "warnings": cube.meta["warnings"],
        "seconds": round(time.perf_counter() - start, 3),
    }


def _settings(options: dict) -> dict:
    """What decides a calibrated cube's numbers, as its provenance records them."""
    grid = options["bands"]
    return {"to": options["to"], "drop_columns": options["drop"], "bands": None if grid is None else grid.tolist(),
            "method": options["method"], "fwhm": options["fwhm"], "extrapolate": options["extrapolate"],
            "gain": None if options["gain"] is None else str(options["gain"])}


def _outputs(target: Path, fmt: str, preview: bool) -> list[Path]:
    """Every file one capture's calibration writes: the cube, its sidecar JSON and preview."""
    extra = [target.with_suffix(".json")] + ([preview_path(target)] if preview else [])
    return output_files(target, fmt) + extra


def calibrate(
    raw: Annotated[Path, typer.Argument(help="A Specim IQ capture folder (NAME/capture/NAME.hdr) or a folder of them.")],
    out: OutDir = None,
    out_option: OutOption = None,
    to: Annotated[str, typer.Option("--to", help="reflectance, radiance (needs the camera's gain: the .cal in the capture folder, or --gain) or dn (dark-subtracted).")] = "reflectance",
    drop_columns: Annotated[str, typer.Option(
        "--drop-columns",
        help="Detector columns (raw samples = upright rows) to remove: 'challenge' (15 at each slit end, "
        "512 -> 482 as in the NTIRE 2020 data, whose own list is not public; scaled for other widths), 'auto' (detect from the "
        "references), 'none', or a list like 0:15,497:512.",
    )] = "challenge",
    bands: Bands = "400:700:10",
    method: Method = "linear",
    fwhm: Fwhm = None,
    extrapolate: Extrapolate = False,
    gain: Annotated[Path | None, typer.Option("--gain", help="Radiometric gain file (ENVI .cal) for --to radiance; default the one in each capture folder.")] = None,
    format: CubeFormat = "mat",
    preview: Preview = False,
    workers: Workers = 1,
    cluster: Cluster = None,  # read by its callback: run_batch sends the files to the cluster
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Calibrate Specim IQ captures to reflectance (default), radiance or DN cubes, remove bad
    detector columns and resample to 31 bands (400-700 nm, 10 nm): the NTIRE 2020 / ARAD recipe.

    Writes OUT/NAME.mat (or .hdr/.raw, .npy, .npz), OUT/NAME.json with all metadata (source, mode,
    formula, dropped columns, wavelengths, integration time, date, values the sensor clipped in
    the scene and in the white reference) and with --preview an sRGB OUT/NAME_preview.png. Existing
    outputs are skipped unless --overwrite.

    Examples:
    $ hstool calibrate raw/ out/
    $ hstool calibrate captures/ cubes/ --drop-columns auto --preview -j 2
    """
    out = one_output(out, out_option)
    to, method = to.lower(), method.lower()  # as --track, --pattern, --drop-columns read theirs
    check_options(to, method, fwhm, gain)
    format = check_cube_format(format)
    grid = target_grid(bands)
    method = check_resampling(grid, method, fwhm, extrapolate)
    if grid is not None:  # --method, --fwhm and the range checked once, on the IQ's own grid
        resampling_matrix(IQ_WAVELENGTHS, grid, method, fwhm, extrapolate)
    if format == "npy":  # refused now rather than once per capture
        check_npy_grid(IQ_WAVELENGTHS if grid is None else grid)
    parse_columns(drop_columns, None)  # syntax check before any work
    if gain is not None and not gain.is_file():
        raise HsError("no such gain file", gain)
    captures = find_captures(raw)
    camera = [c / sub for c in captures for sub in CAMERA_FOLDERS]
    inside = next((f for f in camera if out.resolve().is_relative_to(f.resolve())), None)
    if inside is not None:  # its files would sit among the camera's, and read as the capture's next time
        raise HsError(f"the output folder is inside the camera's folder {inside}: choose another", out)
    stems = [c.name for c in captures]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        clash = [str(c) for c in captures if c.name == dupes[0]]
        raise HsError(f"captures {' and '.join(clash)} share the name {dupes[0]}: their outputs would clash; "
                      "calibrate them into separate folders", raw)
    jobs = [(folder, output_path(out, folder.name, format)) for folder in captures]
    inputs = [f for folder in captures for f in capture_files(folder)] + (list(input_files(gain)) if gain else [])
    # a cube kept from an earlier run previews in the units its sidecar records, not this run's --to
    plan = plan_outputs(jobs, lambda job: _outputs(job[1], format, preview), inputs, overwrite,
                        name=lambda job: str(job[0]),
                        preview=lambda job: PreviewJob(job[1], preview_path(job[1]), to,
                                                       units_of=job[1].with_suffix(".json")), with_preview=preview)
    todo, skipped = plan.todo, plan.skipped
    check_output_folder(out)
    options = {
        "to": to, "drop": drop_columns, "bands": grid, "method": method, "fwhm": fwhm, "extrapolate": extrapolate,
        "gain": gain, "format": format, "preview": preview, "overwrite": overwrite,
    }
    wanted = _settings(options)

    def differences(job) -> list[str]:  # what an earlier run's cubes were calibrated with otherwise
        made = read_provenance(job[1], "mat" if format == "mat5" else format)
        return settings_differ(made, wanted, tuple(wanted)) if made else []

    conflicts = refuse_other_settings(plan, differences, lambda job: job[1])
    previews, preview_failures = finish_skipped(plan, "capture(s)", workers)
    results, failures = run_batch(
        todo, functools.partial(_process, options=options), "calibrating", workers, name=lambda item: item[0].name
    )
    rows = [r for _, r in results]
    failures = conflicts + failures
    if json:
        print_json(batch_json(plan, rows, [str(t) for _, t in skipped],
                              [{"capture": str(f.item[0]), "error": f.message} for f in failures], previews,
                              preview_failures))
    elif rows:
        show(table("calibrated", ["capture", "output", "shape", "dropped", "NaN values", "saturated", "s"],
                        [[Path(r["capture"]).name, r["output"], "x".join(map(str, r["shape"])),
                          len(r["dropped_columns"]), r["nan_values"], r["saturated_values"], r["seconds"]] for r in rows]))
    clipped = [Path(r["capture"]).name for r in rows if r["saturated_values"]]
    if clipped:
        err.print(f"{len(clipped)} capture(s) hold saturated raw values ({', '.join(clipped)}): the sensor clipped "
                  "there, so those values read too low (counted in each sidecar's saturated_values)", style="yellow")
    glare = [Path(r["capture"]).name for r in rows if r["white_saturated_cells"]]
    if glare:
        err.print(f"{len(glare)} capture(s) have a white reference the sensor clipped ({', '.join(glare)}): their "
                  "reflectance reads too high in those (column, band) cells (counted in each sidecar's "
                  "white_saturated_cells; expose the panel shorter)", style="yellow")
    for r in rows:
        for note in r["warnings"]:
            err.print(f"{Path(r['capture']).name}: {note}", style="yellow")
    code = report_failures(failures + preview_failures, len(todo) + len(plan.previews) + len(conflicts), plan)
    if code:
        raise typer.Exit(code)
