"""Regenerate the bundled sample: ``python -m hstool.hsdata.sample [FOLDER]``.

Writes ``SYNTH_test_000{0,1,2}.mat`` (:func:`hstool.hsdata.synth.generate_scene`, seeds 0-2, test
split, 128x160, ARAD bands, values rounded to multiples of 2^-14, gzip level 9) and, when
:mod:`hstool.camera` is available, each cube's clean-track PNG and real-world-track JPEG simulated
with the cube's seed. Replaces existing files. FOLDER defaults to the package's sample folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hstool.hsdata import write_cube
from hstool.hsdata.sample import COMPRESSION, QUANTUM, SEEDS, SIZE, SPLIT, sample_dir
from hstool.hsdata.synth import generate_scene


def build(folder: Path) -> list[Path]:
    """Write the sample into ``folder``; return the files written."""
    try:
        from hstool.camera import simulate_to_file, track
    except ImportError:
        simulate_to_file = None
    written: list[Path] = []
    for seed in SEEDS:
        cube = generate_scene(seed, SIZE, split=SPLIT)
        data = np.maximum(np.round(cube.data / QUANTUM), 1) * QUANTUM  # fixed point, never 0
        cube = cube.with_data(data.astype(np.float32))
        cube.meta.pop("source", None)
        path = folder / f"SYNTH_{SPLIT}_{seed:04d}.mat"
        written += write_cube(cube, path, overwrite=True, compression=COMPRESSION)
        if simulate_to_file is not None:
            for name in ("clean", "realworld"):
                pipe = track(name)
                out = folder / f"{path.stem}{pipe.suffix}{pipe.extension}"
                written.append(Path(simulate_to_file(cube, out, pipe, rng=seed, overwrite=True)))
    for p in written:
        p.chmod(0o644)  # package data: readable by everyone (atomic writes create 0600 files)
    if simulate_to_file is None:
        print("hstool.camera is not available: wrote the cubes only", file=sys.stderr)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else sample_dir()
    for p in build(target):
        print(p)
