"""The whole pipeline on the bundled sample scenes, as ``hstool demo`` runs it.

For each track (clean, real world): simulate each sample cube's RGB with the track's camera,
reconstruct it with a bundled model, write the recovered cube, score it against the ground truth
(MRAE, RMSE, PSNR, SAM, back-projection and physical consistency) and write sRGB previews of both
cubes and an error map. Everything lands under one output folder that the demo owns, so a
second run replaces its own earlier files and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hstool.hsdata import HsError, read_cube, read_rgb, write_cube
from hstool.hsdata.render import write_preview
from hstool.hsdata.sample import sample_cubes

from .engine import Reconstructor
from .evaluate import score_pair, write_error_maps

DEMO_METRICS = ("mrae", "rmse", "psnr", "sam")


#: the file that marks a folder as the demo's own (a rerun replaces what is there)
DEMO_MARK = ".hstool-demo"


def claim_folder(out: str | Path) -> Path:
    """The demo's output folder: new, empty, or one an earlier demo run marked as its own. A
    folder holding other files is refused, since the demo replaces files by name."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HsError("the demo writes into a folder; this is a file", out)
    mark = out / DEMO_MARK
    if out.is_dir() and not mark.exists() and any(out.iterdir()):
        raise HsError("holds files no demo run wrote, which the demo could replace: give a new or empty folder", out)
    out.mkdir(parents=True, exist_ok=True)
    if not mark.exists():
        mark.write_text("This folder is hstool demo's: a rerun replaces its files.\n")
    return out


def demo_reconstructors(model: str, tracks: Sequence[str] = ("clean", "realworld"), device: str = "auto"
                        ) -> dict[str, Reconstructor]:
    """The model with its bundled weights for each track, loaded (a model without them, or a device
    that is not there, fails here: before the demo writes anything)."""
    from hstool.camera import track_name

    return {track_name(t): Reconstructor(model, "bundled", track_name(t), device=device) for t in tracks}


def run_demo(
    out: str | Path,
    model: str,
    tracks: Sequence[str] = ("clean", "realworld"),
    seed: int = 0,
    device: str = "auto",
    advance: Callable[[str], None] = lambda what: None,
    reconstructors: dict[str, Reconstructor] | None = None,
) -> list[dict]:
    """Simulate, reconstruct and score every bundled sample cube on each track; one row per
    (track, image) with the metrics of :data:`DEMO_METRICS`, ``backprojection``, ``physical`` and
    the paths written. ``advance(label)`` is called after each image (for a progress bar);
    ``reconstructors`` (:func:`demo_reconstructors`) may be loaded beforehand."""
    from hstool.camera import capture_seeds, file_seed, simulate_to_file, track

    recs = reconstructors or demo_reconstructors(model, tracks, device)  # a bad model fails before any file
    out = claim_folder(out)
    rows = []
    cubes = sample_cubes()
    for name in tracks:
        pipe = track(name)
        rec = recs[pipe.name]
        for path in cubes:
            gt = read_cube(path)
            stem = path.stem
            rgb_path = simulate_to_file(
                gt,
                out / "rgb" / f"{stem}{pipe.suffix}{pipe.extension}",
                pipe,
                np.random.default_rng(capture_seeds(file_seed(seed, stem))[0]),  # as simulate draws it
                overwrite=True,
            )
            rgb = read_rgb(rgb_path)
            pred = gt.with_data(rec(rgb), rec.wavelengths, source=str(rgb_path), model=model, track=pipe.name)
            cube_path = write_cube(pred, out / f"recon_{pipe.name}" / f"{stem}.mat", overwrite=True)[0]
            previews = out / "previews"
            write_preview(gt, previews / f"{stem}_gt.png", overwrite=True)
            write_preview(pred, previews / f"{stem}_{pipe.name}_{model}.png", overwrite=True)
            maps = write_error_maps(
                pred.data, gt.data, previews, f"{stem}_{pipe.name}_{model}", gt.wavelengths, overwrite=True
            )
            row = score_pair(pred, gt, DEMO_METRICS, pipeline=pipe, rgb=rgb, seed=file_seed(seed, stem))
            rows.append(
                {"track": pipe.name, "image": stem, **row, "rgb": rgb_path, "cube": cube_path, "maps": maps}
            )
            advance(f"{pipe.name} {stem}")
    return rows
