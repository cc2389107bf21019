"""``hstool render``: an sRGB preview of a cube, and plots of chosen pixels' spectra."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from hstool.hsdata import HsError, check_writable, read_cube
from hstool.hsdata.atomic import check_output_folder
from hstool.hsdata.errors import check_positive
from hstool.hsdata.formats.image import check_png, save_figure
from hstool.hsdata.render import cube_to_srgb, write_preview

from .options import InputFormat, Json, Overwrite, check_input_format
from .output import err, print_json

Opt = typer.Option


def parse_pixels(values: list[str]) -> list[tuple[int, int]]:
    """``["10,20", "30,40 5,6"]`` -> [(10, 20), (30, 40), (5, 6)]: x (column), y (row) pairs."""
    pixels = []
    for value in values:
        for item in re.split(r"[\s;]+", value.strip()):
            if not item:
                continue
            m = re.fullmatch(r"(\d+),(\d+)", item)
            if m is None:
                raise HsError(f"--spectra '{item}' is not X,Y (column,row in pixels, e.g. 120,80)")
            pixels.append((int(m.group(1)), int(m.group(2))))
    return pixels


def plot_spectra(cube, srgb: np.ndarray, pixels: list[tuple[int, int]], path: Path, overwrite: bool) -> Path:
    """A PNG with the preview (pixels marked and numbered) beside their spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors
    fig, (ax_img, ax_sp) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1, 1.2]})
    ax_img.imshow(srgb, interpolation="nearest")
    ax_img.set_axis_off()
    ax_img.set_title(Path(str(cube.meta.get("source", ""))).name or "preview", fontsize=9)
    for i, (x, y) in enumerate(pixels):
        c = colours[i % len(colours)]
        ax_img.plot(x, y, marker="o", ms=9, mfc="none", mec=c, mew=2)
        ax_img.annotate(str(i + 1), (x, y), xytext=(6, -6), textcoords="offset points", color=c, fontsize=9,
                        fontweight="bold")  # fmt: skip
        ax_sp.plot(cube.wavelengths, np.asarray(cube.data[y, x], dtype=np.float64), color=c, lw=1.6,
                   label=f"{i + 1}: ({x}, {y})")  # fmt: skip
    ax_sp.set_xlabel("wavelength (nm)")
    ax_sp.set_ylabel(cube.meta.get("units", "value"))
    ax_sp.grid(alpha=0.3)
    ax_sp.legend(fontsize=8, title="pixel (x, y)", title_fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, overwrite, dpi=100)


def render(
    cube_path: Annotated[Path, typer.Argument(help="Cube file (.mat, .hdr/.raw, .npy, .npz).", show_default=False)],
    out: Annotated[Path, typer.Argument(help="Preview image (.png, .jpg, .tif).", show_default=False)],
    exposure: Annotated[float | None, Opt(
        "--exposure", help="Multiply Y by this (1 = as is); default: auto, 99th percentile of Y at 0.9.")] = None,
    spectra: Annotated[list[str] | None, Opt(
        "--spectra", "-s", help="Pixels X,Y (column,row) whose spectra to plot; repeat -s, or quote a list: -s '10,20 30,40'.")] = None,
    plot: Annotated[Path | None, Opt("--plot", help="Spectra plot file (default: OUT_spectra.png).")] = None,
    as_: Annotated[str | None, Opt(
        "--as", help="What the values are, where the file does not say (a .npy holds none): reflectance (lit by "
        "D65) or light (seen as it is).")] = None,
    in_format: InputFormat = None,
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Write an sRGB preview of a cube; optionally plot chosen pixels' spectra.

    CIE 1931 2° observer, sRGB transfer. A reflectance cube is lit by D65;
    any other cube (ARAD's normalised radiance, DN) is the light reaching
    the eye; --as says which, for a file that does not (.npy). With --spectra X,Y ..., a second PNG (OUT_spectra.png or --plot)
    shows the preview with those pixels marked beside their spectra.

    Examples:
    $ hstool render ARAD_HS_0451.mat preview.png -s 100,200 -s 300,50
    """
    check_positive(exposure, "--exposure")
    pixels = parse_pixels(spectra or [])
    if plot is not None and not pixels:
        raise HsError("--plot needs pixels to plot: add --spectra X,Y")
    plot_path = (plot or out.with_name(out.stem + "_spectra.png")) if pixels else None
    in_format = check_input_format(in_format)
    for target in (out, plot_path):
        if target is not None:
            check_writable(target, overwrite, inputs=(cube_path,))
    if plot_path is not None:
        check_png(plot_path)
    if plot_path is not None and plot_path.resolve() == out.resolve():
        raise HsError("the spectra plot and the preview would be the same file", plot_path)
    if as_ is not None and as_.lower() not in ("reflectance", "light"):
        raise HsError(f"--as takes reflectance or light, not '{as_}'")
    cube = read_cube(cube_path, in_format, dtype=None)  # as stored: a float64 cube keeps its range
    cube.meta.setdefault("source", str(cube_path))
    if as_ is not None:
        cube.meta["units"] = "reflectance" if as_.lower() == "reflectance" else "light"
    for x, y in pixels:
        if not (0 <= x < cube.width and 0 <= y < cube.height):
            raise HsError(f"pixel {x},{y} lies outside the {cube.width}x{cube.height} (width x height) cube", cube_path)
    for target in (out, plot_path):  # both folders take files before either file is written
        if target is not None:
            check_output_folder(target.parent)
    write_preview(cube, out, overwrite=overwrite, exposure=exposure)
    written = {"preview": str(out), "shape": list(cube.shape)}
    if plot_path is not None:
        plot_spectra(cube, cube_to_srgb(cube, exposure), pixels, plot_path, overwrite)
        written["plot"] = str(plot_path)
        written["pixels"] = [{"x": x, "y": y, "spectrum": np.asarray(cube.data[y, x], float).round(6).tolist()}
                             for x, y in pixels]  # fmt: skip
    if json:
        written["wavelengths"] = cube.wavelengths.tolist()
        print_json(written)
    else:
        err.print(f"wrote {out}" + (f" and {plot_path}" if plot_path else ""))
