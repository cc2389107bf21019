"""``hstool recon``: reconstruct hyperspectral cubes from RGB images with a registered model.

Outputs are named by the input's stem with a known track suffix removed, so that a scorer pairs
them with the ground truth by stem: ``ARAD_HS_0451_clean.png`` -> ``OUT/ARAD_HS_0451.mat``
(suffixes ``_clean``, ``_RealWorld``, ``_ntire2022``, ``_rgb``, any case).

Without ``--track`` (or a weights file that names its track) each image runs on its own track,
:func:`hstool.camera.image_track`: its name's suffix, else its encoding (JPEG: realworld). Every
cube carries its provenance (:mod:`hstool.hsdata.provenance`) and has a JSON sidecar,
``OUT/ARAD_HS_0451.json``; a rerun that finds outputs made with other settings refuses them.
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
from hstool.hsdata.provenance import (
    PROVENANCE,
    provenance_record,
    read_provenance,
    settings_differ,
    sidecar_path,
    write_sidecar,
)
from hstool.hsdata.render import preview_path

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
    IO,
    WEIGHTS_METAVAR,
    Cluster,
    CubeFormat,
    Device,
    Json,
    Overwrite,
    Preview,
    Workers,
    as_option_error,
    check_cube_format,
    weights_file,
    weights_track,
)
from .output import fmt, print_json, show, table

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
    """Every file one image's reconstruction writes: the cube, its sidecar and its preview."""
    return output_files(dst, format) + [sidecar_path(dst)] + ([preview_path(dst)] if preview else [])


def _load_tracks(settings: tuple, tracks: tuple[str, ...]) -> None:
    """A worker's setup: the model of each track its images may need, loaded once."""
    for track in tracks:
        _reconstructor(_with_track(settings, track))


def _with_track(settings: tuple, track: str) -> tuple:
    """``settings`` (with track None) for one image's track."""
    return settings[:2] + (track,) + settings[3:]


def _one(job: tuple[Path, Path, str, str], settings: tuple, format: str, preview: bool, overwrite: bool) -> dict:
    try:
        return _reconstruct(job, _with_track(settings, job[2]), format, preview, overwrite)
    except HsError as exc:  # a problem of the image's values names the image, by its path
        if exc.path is not None:
            raise
        raise HsError(exc.message, job[0]) from None


def _reconstruct(job: tuple[Path, Path, str, str], settings: tuple, format: str, preview: bool,
                 overwrite: bool) -> dict:
    src, dst, track, track_from = job
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
        provenance = provenance_record("recon", src, {**rec.provenance(), "track_from": track_from})
        result = Cube(cube, rec.wavelengths, {"source": str(src), "model": provenance["model"], PROVENANCE: provenance})
        image = preview_image(result) if preview else None  # fails before the cube is written
        written = write_cube(result, dst, format, overwrite=overwrite)
        written.append(write_sidecar(result, dst, overwrite))
        if image is not None:
            written.append(write_preview(image, preview_path(dst), overwrite=overwrite))
    return {"input": str(src), "output": str(written[0]), "files": [str(f) for f in written],
            "preview": str(written[-1]) if image is not None else None, "shape": list(cube.shape),
            "track": track, "track_from": track_from, "model": provenance["model"],
            "seconds": round(seconds, 3), **rec.last_info}


def recon(
    inputs: Annotated[list[Path], typer.Argument(help="RGB images (.png 8/16-bit, .jpg, .tif) or folders of them.",
                                                 metavar="IMAGES...")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name (see `hstool models`); "
                                              "optional with --weights.")] = None,
    weights: Annotated[Path | None, typer.Option("--weights", "-w", help="Weights file, or bundled NAME:TRACK.",
                                                 parser=weights_file, metavar=WEIGHTS_METAVAR)] = None,
    track: Annotated[str | None, typer.Option("--track", "-t", help="clean or realworld for every image; default "
                                              "each image's own (name suffix, else JPEG realworld, PNG/TIFF clean).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (an option: inputs may be folders).",
                                      file_okay=False, rich_help_panel=IO)] = Path("."),
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

    Examples:
    $ hstool recon img.jpg --model hrnet_s --track realworld
    $ hstool recon photos/ --model rootpoly --track realworld --out cubes/ --consistent
    """
    if model is None and weights is None:
        raise HsError("give --model NAME (bundled weights) or --weights FILE")
    given = track is not None
    track = weights_track(weights, track, default=None)  # None: each image's own
    format = check_cube_format(format)
    from hstool.camera.pipeline import image_track, strip_track_suffix

    files = gather_inputs(inputs, ("image",))
    chosen = [(track, "--track" if given else "weights") if track else image_track(f) for f in files]
    jobs = [(f, output_path(out, strip_track_suffix(f.stem), format), *how) for f, how in zip(files, chosen)]
    # planned by the cube and preview alone: a cube an older hstool wrote has no sidecar, and is skipped as before
    plan = plan_outputs(jobs, lambda job: [p for p in _outputs(job[1], format, preview) if p != sidecar_path(job[1])],
                        files, overwrite,
                        name=lambda job: str(job[0]), preview=lambda job: PreviewJob(job[1], preview_path(job[1])),
                        with_preview=preview)
    jobs, skipped = plan.todo, plan.skipped
    consistent_arg: Any = (css or True) if consistent else None
    if css and not consistent:
        raise HsError("--css is used with --consistent")
    precision = precision.lower()  # FP16 is fp16
    settings = (model, str(weights) if weights else None, None, device, precision, ensemble, tile,
                consistent_arg, exposure_invariant, gamma)
    # load each track's model up front: a bad model or weights file fails before any file; a track
    # with no weights for it (an image named _ntire2022) fails its images only
    recs, unloaded = {}, []
    for t in sorted({job[2] for job in jobs + skipped}):
        try:
            recs[t] = _reconstructor(_with_track(settings, t))
        except HsError as exc:
            unloaded.append(as_option_error(exc, ("gamma", "tile", "precision")))
    if not recs:
        raise unloaded[0]
    rec = next(iter(recs.values()))
    if rec.effective_precision != precision:
        raise HsError(f"--precision {precision}: {rec.spec.name} computes in {rec.effective_precision} on {rec.device} "
                      "(fp16 needs CUDA; bf16 CUDA or a CPU with native bf16; pixel models on a CPU run fp32)")
    from hstool.recon.engine import PROVENANCE_SETTINGS

    wanted = {t: r.provenance() for t, r in recs.items()}

    def differences(job) -> list[str]:  # what an earlier run's outputs were made with otherwise
        made = read_provenance(job[1], "mat" if format == "mat5" else format) if job[2] in wanted else None
        return settings_differ(made, wanted[job[2]], PROVENANCE_SETTINGS) if made else []

    conflicts = refuse_other_settings(plan, differences, lambda job: job[1])
    fn = functools.partial(_one, settings=settings, format=format, preview=preview, overwrite=overwrite)
    # spawn: the model was loaded here, and a forked child on several threads could hang in the OpenMP
    # pool (see run_batch); each worker loads the model once before its first image (forked: inherits it)
    previews, preview_failures = finish_skipped(plan, "image(s)", workers, spawn=True)
    results, failures = run_batch(jobs, fn, "recon", workers, name=lambda job: job[0].name, spawn=True,
                                  setup=functools.partial(_load_tracks, settings, tuple(recs)))
    rows = [r for _, r in results]
    failures = conflicts + failures
    if json:
        print_json(batch_json(plan, rows, [str(job[1]) for job in skipped],
                              [{"input": str(f.item[0]), "error": f.message} for f in failures], previews,
                              preview_failures))
    elif rows:
        cols = ["input", "output", "track", "shape", "s"] + (["corrected", "infeasible"] if consistent else [])
        show(table(f"{len(rows)} cube(s) in {out}", cols,
                   [[Path(r["input"]).name, r["output"], f"{r['track']} ({r['track_from']})",
                     "x".join(map(str, r["shape"])), fmt(r["seconds"], 3)]
                         + ([r.get("corrected", 0), r.get("infeasible", 0)] if consistent else []) for r in rows]))
    raise typer.Exit(report_failures(failures + preview_failures, len(jobs) + len(plan.previews) + len(conflicts),
                                     plan))
