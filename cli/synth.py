"""``hstool synth``: synthetic hyperspectral scenes from measured spectra (ARAD-style cubes)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from hstool.hsdata import HsError, output_files, output_path, write_cube
from hstool.hsdata.atomic import check_output_folder
from hstool.hsdata.formats.npy import check_npy_grid
from hstool.hsdata.render import preview_image, preview_path, write_preview
from hstool.hsdata.spectral import parse_band_grid
from hstool.hsdata.synth import generate_scene

from .batch import (
    PreviewJob,
    batch_json,
    finish_skipped,
    job_outputs,
    plan_outputs,
    report_failures,
    run_batch,
)
from .options import (
    Cluster,
    CubeFormat,
    Json,
    OutDir,
    OutOption,
    Overwrite,
    Preview,
    Seed,
    Workers,
    check_cube_format,
    one_output,
)
from .output import print_json, show, table

Opt = typer.Option


@dataclass
class Job:
    seed: int
    output: Path
    size: tuple[int, int]
    wavelengths: np.ndarray
    split: str
    format: str
    preview: Path | None
    overwrite: bool


def parse_size(text: str) -> tuple[int, int]:
    """``"482x512"`` -> (482, 512): height x width."""
    try:
        h, w = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise HsError(f"--size '{text}' is not HEIGHTxWIDTH, e.g. 482x512") from None
    if h < 8 or w < 8:
        raise HsError(f"--size '{text}' is too small (at least 8x8)")
    return h, w


def _outputs(job: Job) -> list[Path]:
    """Every file a scene writes: the cube (an ENVI pair) and the optional preview."""
    return output_files(job.output, job.format) + ([job.preview] if job.preview is not None else [])


def run_job(job: Job) -> dict:
    """Generate and write one scene (module level, so worker processes can run it)."""
    t0 = time.perf_counter()
    with job_outputs(_outputs(job), job.overwrite):  # all of a scene's files or none
        cube = generate_scene(job.seed, job.size, job.wavelengths, job.split)
        image = preview_image(cube) if job.preview is not None else None  # fails before the cube is written
        files = write_cube(cube, job.output, job.format, job.overwrite)
        if image is not None:
            files.append(write_preview(image, job.preview, overwrite=job.overwrite))
    return {
        "seed": job.seed,
        "output": str(job.output),
        "files": [str(f) for f in files],
        "illuminant": cube.meta["illuminant"],
        "norm_factor": cube.meta["norm_factor"],
        "seconds": round(time.perf_counter() - t0, 3),
    }


def synth(
    out: OutDir = None,
    out_option: OutOption = None,
    n: Annotated[int, Opt("--n", "-n", min=1, help="Number of scenes.")] = 10,
    size: Annotated[str, Opt("--size", help="HEIGHTxWIDTH in pixels.")] = "482x512",
    split: Annotated[str, Opt("--split", help="train or test: disjoint materials and illuminants.")] = "train",
    bands: Annotated[str, Opt("--bands", help="Band grid START:STOP:STEP or a comma list, nm (380-780).")] = (
        "400:700:10"
    ),
    format: CubeFormat = "mat",
    preview: Preview = False,
    seed: Seed = 0,
    workers: Workers = 1,
    cluster: Cluster = None,  # read by its callback: run_batch sends the files to the cluster
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Generate synthetic hyperspectral scenes from measured spectra, ARAD layout.

    Scene i uses seed SEED+i and goes to SYNTH_<split>_<seed, 4 digits>.mat:
    a cube in [0, 1] like ARAD's, with [bold]norm_factor[/] (radiance = cube x norm_factor;
    kept by mat, mat5, envi and npz, lost by npy). Existing files are skipped.
    Materials: earthlib's spectral library, colour-science's ColorCheckers,
    CIE test colour samples, NIST CQS and Otsu 2018 spectra; light: CIE
    daylight, A, fluorescent, LED and discharge lamps (hstool.hsdata.materials).
    --split test uses materials and lights that train never uses.

    The bundled sample (hstool.hsdata.sample) was made by
    [bold]python -m hstool.hsdata.sample[/]: the scenes of
    [bold]hstool synth OUT --n 3 --split test --size 128x160[/] (seeds 0-2),
    rounded to multiples of 2^-14 and gzipped, with each cube's clean and
    real-world RGB simulated by hstool.camera (noise seeded by the scene seed).

    Examples:
    $ hstool synth scenes/ --n 100 --seed 1000 --split test -j 2
    """
    out = one_output(out, out_option)
    split = split.lower()  # as --track, --pattern, --bands read theirs
    if split not in ("train", "test"):
        raise HsError(f"--split must be train or test, not '{split}'")
    format = check_cube_format(format)
    hw = parse_size(size)
    wavelengths = parse_band_grid(bands)
    if out.exists() and not out.is_dir():
        raise HsError("output is not a folder", out)
    generate_scene(seed, (8, 8), wavelengths, split)  # a bad band grid fails here, before any work
    if format == "npy":  # refused now rather than once per scene
        check_npy_grid(wavelengths)
    jobs = []
    for s in range(seed, seed + n):
        stem = f"SYNTH_{split}_{s:04d}"
        jobs.append(Job(s, output_path(out, stem, format), hw, wavelengths, split, format,
                        preview_path(out / stem) if preview else None, overwrite))  # fmt: skip
    plan = plan_outputs(jobs, _outputs, (), overwrite, name=lambda j: j.output.name,
                        preview=lambda j: PreviewJob(j.output, preview_path(out / j.output.stem)), with_preview=preview)
    jobs, skipped = plan.todo, plan.skipped
    if jobs:
        check_output_folder(out)  # before the scenes' seconds, not after them
    previews, preview_failures = finish_skipped(plan, "scene(s)", workers)
    results, failures = run_batch(jobs, run_job, f"synth {split}", workers, name=lambda j: j.output.name)
    rows = [r for _, r in results]
    if json:
        print_json(batch_json(plan, rows, [str(j.output) for j in skipped],
                              [{"output": str(f.item.output), "error": f.message} for f in failures], previews,
                              preview_failures))
    elif rows:
        show(table(f"{len(rows)} scene(s) in {out}", ["file", "illuminant", "norm_factor", "s"],
                        [[Path(r["output"]).name, r["illuminant"], r["norm_factor"], r["seconds"]] for r in rows]))
    code = report_failures(failures + preview_failures, len(jobs) + len(plan.previews), plan)
    if code:
        raise typer.Exit(code)
