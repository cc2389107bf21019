"""``hstool recon``: reconstruct hyperspectral cubes from RGB images with a registered model.

Outputs are named by the input's stem with a known track suffix removed, so that a scorer pairs
them with the ground truth by stem: ``ARAD_HS_0451_clean.png`` -> ``OUT/ARAD_HS_0451.mat``
(suffixes ``_clean``, ``_RealWorld``, ``_ntire2022``, ``_rgb``, any case).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hstool.hsdata import (
    Cube,
    HsError,
    output_files,
    output_path,
    read_rgb,
    write_cube,
)
from hstool.hsdata.formats.image import is_preview

from .batch import (
    PreviewJob,
    batch_json,
    finish_skipped,
    gather_inputs,
    job_outputs,
    plan_outputs,
    report_failures,
    run_batch,
)
from .options import (
    Cluster,
    CubeFormat,
    Device,
    Json,
    Overwrite,
    Preview,
    Workers,
    as_option_error,
    check_cube_format,
    weights_track,
)
from .output import err, fmt, print_json, table

_RECONSTRUCTORS: dict[tuple, Any] = {}


def _reconstructor(settings: tuple):
    """One loaded model per process and settings (worker processes build their own)."""
    if settings not in _RECONSTRUCTORS:
        from hstool.recon import Reconstructor

        name, weights, track, device, precision, ensemble, tile, consistent, exposure, gamma = settings
        _RECONSTRUCTORS[settings] = Reconstructor(
            name, weights or "bundled", track, device, precision, ensemble, tile, consistent, exposure, gamma)
    return _RECONSTRUCTORS[settings]


def _outputs(dst: Path, format: str, preview: bool) -> list[Path]:
    """Every file one image's reconstruction writes: the cube, and its preview."""
    return output_files(dst, format) + ([_preview_path(dst)] if preview else [])


def _preview_path(dst: Path) -> Path:
    return dst.with_name(dst.stem + "_preview.png")


def _one(job: tuple[Path, Path], settings: tuple, format: str, preview: bool, overwrite: bool) -> dict:
    try:
        return _reconstruct(job, settings, format, preview, overwrite)
    except HsError as exc:  # a problem of the image's values names the image, by its path
        if exc.path is not None:
            raise
        raise HsError(exc.message, job[0]) from None


def _reconstruct(job: tuple[Path, Path], settings: tuple, format: str, preview: bool, overwrite: bool) -> dict:
    src, dst = job
    if is_preview(src):  # calibrate's NAME.png beside NAME.mat: reconstructing it would replace the cube
        raise HsError("an sRGB preview hstool wrote of a cube, not a camera's RGB: nothing to reconstruct", src)
    from hstool.hsdata.render import preview_image, write_preview

    with job_outputs(_outputs(dst, format, preview), overwrite, inputs=(src,)):  # all of an image's files or none
        rgb = read_rgb(src)
        rec = _reconstructor(settings)
        t = time.perf_counter()
        cube = rec(rgb)
        seconds = time.perf_counter() - t
        # no units: a model estimates what it was trained on, ARAD-style normalised light (reflectance x
        # illuminant), which previews as light, as its ground truth and the demo's previews do
        result = Cube(cube, rec.wavelengths, {"source": str(src), "model": rec.meta.get("architecture", settings[0])})
        image = preview_image(result) if preview else None  # fails before the cube is written
        written = write_cube(result, dst, format, overwrite=overwrite)
        if image is not None:
            written.append(write_preview(image, _preview_path(dst), overwrite=overwrite))
    return {"input": str(src), "output": str(written[0]), "files": [str(f) for f in written],
            "preview": str(written[-1]) if image is not None else None, "shape": list(cube.shape),
            "seconds": round(seconds, 3), **rec.last_info}


def recon(
    inputs: Annotated[list[Path], typer.Argument(help="RGB images (.png 8/16-bit, .jpg, .tif) or folders of them.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name (see `hstool models`); "
                                              "optional with --weights.")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", "-w", help="Own weights file from `hstool train` "
                                                 "(default: the bundled ones).", exists=True, dir_okay=False)] = None,
    track: Annotated[str | None, typer.Option("--track", "-t", help="Which bundled weights / camera: clean (default) or "
                                              "realworld; with --weights, the file's own.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.", file_okay=False)] = Path("."),
    format: CubeFormat = "mat",
    device: Device = "auto",
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16 or bf16 (fp16: GPU only; bf16: GPU or a CPU with native bf16).")] = "fp32",
    tile: Annotated[int | None, typer.Option("--tile", min=0, help="Tile side in pixels (0: never tile; "
                                             "default: tile images over 768x768 pixels with 512, which bounds the memory).")] = None,
    ensemble: Annotated[bool, typer.Option("--ensemble", help="Average over the four flips.")] = False,
    consistent: Annotated[bool, typer.Option("--consistent", help="Project spectra onto the non-negative ones that "
                                             "the camera (of --track or --css) images as the input RGB: to the middle "
                                             "of each 8/16-bit code's step, so they re-image to the same codes.")] = False,
    css: Annotated[str | None, typer.Option("--css", help="Camera response for --consistent (name or file); "
                                            "default the track's.")] = None,
    exposure_invariant: Annotated[bool, typer.Option("--exposure-invariant", help="Normalise input intensity before "
                                                     "the model and restore it after.")] = False,
    gamma: Annotated[str, typer.Option("--gamma", help="Response curve the images were encoded with, undone "
                                       "first: 1 (linear, as the NTIRE tracks), srgb (ordinary photos), or a number.")] = "1",
    preview: Preview = False,
    workers: Workers = 1,
    cluster: Cluster = None,  # read by its callback: run_batch sends the files to the cluster
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Reconstruct a 31-band cube from each RGB image. The models expect linear camera RGB, as the
    NTIRE tracks are: give --gamma srgb for ordinary (sRGB-encoded) photos.

    Example: [bold]hstool recon photos/ --model rootpoly --track realworld --out cubes/ --consistent[/]
    """
    if model is None and weights is None:
        raise HsError("give --model NAME (bundled weights) or --weights FILE")
    track = weights_track(weights, track)
    format = check_cube_format(format)
    from hstool.camera.pipeline import strip_track_suffix

    files = gather_inputs(inputs, ("image",))
    jobs = [(f, output_path(out, strip_track_suffix(f.stem), format)) for f in files]
    plan = plan_outputs(jobs, lambda job: _outputs(job[1], format, preview), files, overwrite,
                        name=lambda job: str(job[0]), preview=lambda job: PreviewJob(job[1], _preview_path(job[1])),
                        with_preview=preview)
    jobs, skipped = plan.todo, plan.skipped
    consistent_arg: Any = (css or True) if consistent else None
    if css and not consistent:
        raise HsError("--css is used with --consistent")
    precision = precision.lower()  # FP16 is fp16
    settings = (model, str(weights) if weights else None, track, device, precision, ensemble, tile,
                consistent_arg, exposure_invariant, gamma)
    try:
        rec = _reconstructor(settings)  # load once up front: a bad model or weights file fails before any file
    except HsError as exc:
        raise as_option_error(exc, ("gamma", "tile", "precision")) from None
    if rec.effective_precision != precision:
        raise HsError(f"--precision {precision}: {rec.spec.name} computes in {rec.effective_precision} on {rec.device} "
                      "(fp16 needs CUDA; bf16 CUDA or a CPU with native bf16; pixel models on a CPU run fp32)")
    fn = functools.partial(_one, settings=settings, format=format, preview=preview, overwrite=overwrite)
    # workers start afresh: the model already ran here, and a forked child would hang in its OpenMP pool
    previews, preview_failures = finish_skipped(plan, "image(s)", workers, spawn=True)
    results, failures = run_batch(jobs, fn, "recon", workers, name=lambda job: job[0].name, spawn=True)
    rows = [r for _, r in results]
    if json:
        print_json(batch_json(plan, rows, [str(dst) for _, dst in skipped],
                              [{"input": str(f.item[0]), "error": f.message} for f in failures], previews,
                              preview_failures))
    elif rows:
        cols = ["input", "output", "shape", "seconds"] + (["corrected", "infeasible"] if consistent else [])
        err.print(table(f"{len(rows)} cube(s) in {out}", cols,
                        [[Path(r["input"]).name, r["output"], "x".join(map(str, r["shape"])), fmt(r["seconds"], 3)]
                         + ([r.get("corrected", 0), r.get("infeasible", 0)] if consistent else []) for r in rows]))
    raise typer.Exit(report_failures(failures + preview_failures, len(jobs) + len(plan.previews), plan))
