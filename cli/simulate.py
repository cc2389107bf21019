"""``hstool simulate``: the RGB images a camera would record from hyperspectral cubes."""

from __future__ import annotations

import json as jsonlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from hstool.camera import (
    Pipeline,
    capture_seeds,
    file_seed,
    list_css,
    load_css,
    plot_css,
    scale_brightness,
    track,
)
from hstool.camera.pipeline import capture, clipped_fraction, encode_capture, shuffle_capture
from hstool.hsdata import (
    HsError,
    atomic_path,
    input_files,
    output_files,
    read_cube,
    write_cube,
)
from hstool.hsdata.cube import json_value
from hstool.hsdata.errors import check_positive
from hstool.hsdata.formats import DEFAULT_SUFFIX
from hstool.hsdata.provenance import PROVENANCE, provenance_record, read_provenance, settings_differ

from .batch import (
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
    CAMERA,
    Cluster,
    CubeFormat,
    DarkNoiseQuirk,
    InputFormat,
    Json,
    NoNoise,
    Npe,
    OutOption,
    Overwrite,
    Seed,
    Workers,
    as_option_error,
    check_cube_format,
    check_input_format,
    inputs_and_output,
    noise_settings,
)
from .output import err, fmt, print_json, show, table

Opt = typer.Option
C = CAMERA
#: clipped pixels beyond this share of an image are warned of (a white patch clips a few)
CLIPPED_WARN = 0.01


def _settings(job) -> dict:
    """What decides the cube ``simulate --brightness/--shuffle`` writes beside its image, as its
    provenance records it (as JSON reads it back)."""
    settings = {"pipeline": job.pipeline.describe(), "seed": job.seed, "brightness": job.brightness,
                "shuffle": job.shuffle}
    return jsonlib.loads(jsonlib.dumps(settings, default=json_value))


def _differences(job) -> list[str]:
    """What an earlier run's cube of ``job`` was made with otherwise (nothing where there is no cube
    beside the image, or it keeps no record)."""
    if job.cube_output is None:
        return []
    made = read_provenance(job.cube_output, "mat" if job.cube_format == "mat5" else job.cube_format)
    if not made:
        return []
    wanted = _settings(job)
    differ = settings_differ(made, wanted, ("seed", "brightness", "shuffle"))
    return differ + (["another camera pipeline"] if made.get("pipeline") != wanted["pipeline"] else [])


@dataclass
class Job:
    source: Path
    output: Path
    cube_output: Path | None
    pipeline: Pipeline
    seed: int
    brightness: float | None
    shuffle: int | None
    in_format: str | None
    cube_format: str
    overwrite: bool


def run_job(job: Job) -> dict:
    """Read, transform, simulate and write one file (module level, so worker processes can run it)."""
    t0 = time.perf_counter()
    cube = read_cube(job.source, job.in_format)
    cube.meta.setdefault("source", str(job.source))
    noise_ss, shuffle_ss, *_ = capture_seeds(file_seed(job.seed, job.source.stem))
    if job.brightness is not None:
        cube = scale_brightness(cube, job.brightness)
    image = capture(cube, job.pipeline, np.random.default_rng(noise_ss))  # fails before anything is written
    if job.shuffle:  # the image as the camera writes it, then its patches and the cube's relocated
        cube, encoded = shuffle_capture(cube, image, job.pipeline, job.shuffle, np.random.default_rng(shuffle_ss))
    else:
        encoded = encode_capture(image, job.pipeline)
    with job_outputs(_outputs(job), job.overwrite):  # the image and its cube (scaled, permuted), or neither
        if job.cube_output is not None:  # the ground truth of the image: what made it, in the file
            cube.meta[PROVENANCE] = provenance_record("simulate", job.source, _settings(job),
                                                      cube.meta.get(PROVENANCE))
            write_cube(cube, job.cube_output, job.cube_format, overwrite=job.overwrite)
        with atomic_path(job.output, job.overwrite) as tmp:
            tmp.write_bytes(encoded)
    return {
        "input": str(job.source),
        "output": str(job.output),
        "cube": str(job.cube_output) if job.cube_output else None,
        "shape": list(cube.shape[:2]),
        "clipped": round(clipped_fraction(image), 6),  # share of pixels the camera clipped
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _outputs(job: Job) -> list[Path]:
    """Every file a job writes: the image, and with ``--shuffle``/``--brightness`` the cube it shows."""
    cube = output_files(job.cube_output, job.cube_format) if job.cube_output is not None else []
    return [job.output, *cube]


def _holds_cubes(folder: Path, in_format: str | None) -> bool:
    try:
        return bool(gather_inputs([folder], in_format=in_format))
    except HsError:
        return False


def _show_css(as_json: bool) -> None:
    rows = [
        {"name": c.name, "range_nm": f"{c.range[0]:g}-{c.range[1]:g}", "samples": c.wavelengths.size,
         "column_sums": [round(float(v), 3) for v in c.values.sum(axis=0)], "description": c.description,
         "source": c.source}
        for c in list_css()
    ]
    if as_json:
        print_json(rows)
        return
    show(table("camera spectral sensitivities (--css NAME, or a .csv/.npz/.mat path)",
                    ["name", "range nm", "samples", "description"],
                    [[r["name"], r["range_nm"], r["samples"], r["description"]] for r in rows]))


def simulate(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Cube files or folders, then the output folder (or --out).", metavar="[CUBES... OUT]",
        show_default=False)] = None,
    out_option: OutOption = None,
    track_name: Annotated[str, Opt("--track", "-t", help="clean, realworld or ntire2022.", rich_help_panel=C)] = "clean",
    css: Annotated[str | None, Opt("--css", help="CSS name (--list-css) or a .csv/.npz/.mat file.",
                                   rich_help_panel=C)] = None,
    npe: Npe = None,
    no_noise: NoNoise = False,
    dark_noise: Annotated[float | None, Opt("--dark-noise", help="Gaussian dark noise, std in e-.", rich_help_panel=C)] = None,
    dark_noise_quirk: DarkNoiseQuirk = False,
    read_noise: Annotated[float | None, Opt("--read-noise", help="Gaussian read noise, std in e-.", rich_help_panel=C)] = None,
    prnu: Annotated[float | None, Opt("--prnu", help="Pixel gain non-uniformity (relative std).", rich_help_panel=C)] = None,
    pattern: Annotated[str | None, Opt("--pattern", help="Bayer RGGB, BGGR, GRBG, GBRG or none.", rich_help_panel=C)] = None,
    demosaic: Annotated[str | None, Opt("--demosaic", help="ea (edge-aware), bilinear or vng.", rich_help_panel=C)] = None,
    raw_bits: Annotated[int | None, Opt("--raw-bits", min=1, max=16, help="ADC bits of the mosaic (1-16).",
                                        rich_help_panel=C)] = None,
    exposure: Annotated[float | None, Opt("--exposure", help="Multiply the signal (after --target-mean).",
                                          rich_help_panel=C)] = None,
    target_mean: Annotated[float | None, Opt("--target-mean", help="Automatic exposure to this image mean.",
                                             rich_help_panel=C)] = None,
    gamma: Annotated[str | None, Opt("--gamma", help="Response: 1 (linear), e.g. 2.2, or srgb.", rich_help_panel=C)] = None,
    bits: Annotated[int | None, Opt("--bits", min=1, max=16, help="Output bits (16 needs PNG).", rich_help_panel=C)] = None,
    encoding: Annotated[str | None, Opt("--encoding", help="png or jpeg.", rich_help_panel=C)] = None,
    jpeg_quality: Annotated[int | None, Opt("--jpeg-quality", min=0, max=100, help="JPEG quality (0-100).",
                                            rich_help_panel=C)] = None,
    jpeg_sampling: Annotated[str | None, Opt("--jpeg-sampling", help="JPEG chroma: 444, 422, 420.",
                                             rich_help_panel=C)] = None,
    png_compression: Annotated[int | None, Opt("--png-compression", min=0, max=9, help="Deflate level 0-9 (default 9).",
                                               rich_help_panel=C)] = None,
    clip_negative: Annotated[bool, Opt("--clip-negative", help="Clip all negative values to 0 (else noise only).")] = False,
    brightness: Annotated[float | None, Opt("--brightness", help="Scale the cube by K first (report's test).")] = None,
    shuffle: Annotated[int | None, Opt("--shuffle", min=1, help="Permute NxN patches (report's spatial test).")] = None,
    cube_format: CubeFormat = "mat",
    in_format: InputFormat = None,
    list_css_: Annotated[bool, Opt("--list-css", help="List the library CSS and exit.", rich_help_panel=C)] = False,
    plot_css_: Annotated[tuple[str, Path] | None, Opt(
        "--plot-css", help="Plot CSS NAME|PATH to a PNG and exit.", metavar="CSS OUT.png", rich_help_panel=C)] = None,
    seed: Seed = 0,
    workers: Workers = 1,
    cluster: Cluster = None,  # read by its callback: run_batch sends the files to the cluster
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Simulate the RGB image a camera records from each hyperspectral cube.

    Tracks reproduce NTIRE 2020 ([bold]clean[/] bit-exact PNG, [bold]realworld[/] mosaic + noise +
    JPEG) and NTIRE 2022; every stage can be overridden. Names keep the stem: X.mat -> X_clean.png,
    X_RealWorld.jpg. Run alone in a folder of cubes, it writes a folder named for the track (./realworld/).

    Examples:
    $ hstool simulate --track realworld
    $ hstool simulate cubes/ rgb/ --track realworld --seed 1 -j 2
    """
    if (list_css_ or plot_css_ is not None) and paths:
        raise HsError("--list-css and --plot-css take no cubes: run them alone")
    if list_css_:
        _show_css(json)
        return
    if plot_css_ is not None:
        name, target = plot_css_
        written = plot_css(load_css(name), target, overwrite)
        print_json({"plot": str(written)}) if json else err.print(f"wrote {written}")
        return
    inputs, out = inputs_and_output(paths or [], out_option)  # no output folder: one named for the track
    overrides = {
        "css": css, "dark_noise": dark_noise, "read_noise": read_noise, "prnu": prnu,
        "demosaic": demosaic, "raw_bits": raw_bits, "exposure": exposure, "target_mean": target_mean,
        "gamma": gamma, "bits": bits, "encoding": encoding, "jpeg_quality": jpeg_quality,
        "jpeg_sampling": jpeg_sampling, "png_compression": png_compression,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    overrides["prnu_seed"] = seed  # one fixed pattern per run, like one sensor
    if pattern is not None:
        overrides["pattern"] = None if pattern.lower() == "none" else pattern
    if clip_negative:
        overrides["clip_negative"] = True
    try:
        pipe = track(track_name, **overrides)
    except HsError as exc:  # the pipeline names its fields (npe); the user typed options (--npe)
        raise as_option_error(exc, overrides) from None
    pipe = noise_settings(pipe, npe, no_noise, dark_noise_quirk)
    noisy = {"--dark-noise": dark_noise, "--read-noise": read_noise, "--prnu": prnu}
    given = [flag for flag, value in noisy.items() if value is not None]
    if given and pipe.npe is None:
        fix = "drop --no-noise" if no_noise else "use the realworld or ntire2022 track, or --npe"
        raise HsError(f"{', '.join(given)} {'acts' if len(given) == 1 else 'act'} only with sensor noise: {fix}")
    cube_format = check_cube_format(cube_format)
    idle = {  # an option this pipeline would not use: refused, not ignored
        "--demosaic": (demosaic is not None and pipe.pattern is None, "acts on a Bayer mosaic; this pipeline has none"),
        "--jpeg-quality": (jpeg_quality is not None and pipe.encoding != "jpeg", "acts on JPEG output"),
        "--jpeg-sampling": (jpeg_sampling is not None and pipe.encoding != "jpeg", "acts on JPEG output"),
        "--png-compression": (png_compression is not None and pipe.encoding != "png", "acts on PNG output"),
        "--brightness": (brightness is not None and pipe.target_mean is not None,
                         "is undone by the pipeline's automatic exposure (--target-mean): the image would not change"),
        "--format": (cube_format != "mat" and not (shuffle or brightness),
                     "is the format of the cube --shuffle or --brightness writes"),
    }
    for flag, (unused, why) in idle.items():
        if unused:
            raise HsError(f"{flag} {why}; drop it")
    check_positive(brightness, "--brightness")
    in_format = check_input_format(in_format)
    writes_cube = bool(shuffle) or brightness is not None  # the ground truth of what the image now shows
    if writes_cube and out.resolve() in {p.resolve() for p in inputs if p.is_dir()}:
        flag = "--shuffle" if shuffle else "--brightness"
        raise HsError(f"{flag} writes cubes, which a later run would read as inputs: choose another output folder", out)

    if out is None:  # the user's own line: `hstool simulate --track realworld` in a folder of cubes
        out = Path(pipe.name)
        if inputs == [Path(".")] and not _holds_cubes(Path("."), in_format):
            raise HsError("no cubes in this folder: give cube files or folders, then an output folder "
                          "(hstool simulate cubes/ rgb/), or run it where the cubes are")
        err.print(f"writing to {out}{os.sep} (the track's name; give an output folder or --out for another)")
    if out.exists() and not out.is_dir():
        raise HsError("the output must be a folder", out)
    sources = gather_inputs(inputs, in_format=in_format)
    jobs = []
    for src in sources:
        stem = src.stem + pipe.suffix
        target = out / (stem + (".png" if shuffle else pipe.extension))  # a relocated image stays lossless
        cube_target = out / (stem + DEFAULT_SUFFIX[cube_format]) if writes_cube else None
        jobs.append(Job(src, target, cube_target, pipe, seed, brightness, shuffle, in_format, cube_format, overwrite))
    plan = plan_outputs(
        jobs, _outputs, [f for src in sources for f in input_files(src)], overwrite, name=lambda j: str(j.source)
    )
    conflicts = refuse_other_settings(plan, _differences, lambda j: j.cube_output)
    jobs, skipped = plan.todo, plan.skipped
    finish_skipped(plan, "cube(s)")
    results, failures = run_batch(jobs, run_job, f"simulate {pipe.name}", workers, name=lambda j: j.source.name)
    failures = conflicts + failures
    if json:
        print_json({"pipeline": pipe.describe(), **batch_json(
            plan, [r for _, r in results], [str(j.output) for j in skipped],
            [{"input": str(f.item.source), "error": f.message} for f in failures])})
    elif results:
        show(table(f"{pipe.name}: {len(results)} written to {out}", ["input", "output", "clipped %", "s"],
                        [[Path(r["input"]).name, Path(r["output"]).name, f"{100 * r['clipped']:.2f}",
                          fmt(r["seconds"], 3)] for _, r in results]))
    glare = [r for _, r in results if r["clipped"] > CLIPPED_WARN]
    if glare:
        worst = max(glare, key=lambda r: r["clipped"])
        err.print(f"{len(glare)} image(s) clipped on more than {100 * CLIPPED_WARN:g}% of their pixels (up to "
                  f"{100 * worst['clipped']:.1f}% in {Path(worst['output']).name}): the cube is brighter than the "
                  "camera's full scale there; check its scale, or --exposure / --brightness", style="yellow")
    code = report_failures(failures, len(jobs) + len(conflicts), plan)
    if code:
        raise typer.Exit(code)
