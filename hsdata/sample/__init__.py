"""The bundled sample: a few synthetic test-split cubes (ARAD ``.mat`` v7.3) and their simulated RGB.

Made by ``python -m hstool.hsdata.sample`` (see ``README.md`` in this folder for the exact
command and what each file is). Used by ``hstool demo``, the README's first command and tests.

>>> [p.name for p in sample_cubes()]  # doctest: +SKIP
['SYNTH_test_0000.mat', 'SYNTH_test_0001.mat', 'SYNTH_test_0002.mat']
"""

from __future__ import annotations

from pathlib import Path

#: what the sample holds: test-split scenes of this size, on ARAD's 31 bands
SEEDS = (0, 1, 2)
SIZE = (128, 160)
SPLIT = "test"
#: stored values are multiples of this step (finer than the generator's 2^-12 floor) so that gzip
#: packs them: the folder stays under 3 MB
QUANTUM = 2.0**-14
#: gzip level of the .mat files (HDF5 deflate + shuffle, as MATLAB writes v7.3 itself)
COMPRESSION = 9


def sample_dir() -> Path:
    """The folder of the bundled sample inside the installed package."""
    return Path(__file__).resolve().parent


def sample_cubes() -> list[Path]:
    """The bundled cubes (``SYNTH_test_NNNN.mat``), sorted."""
    return sorted(sample_dir().glob("SYNTH_*.mat"))


def sample_rgbs(track: str = "clean") -> list[Path]:
    """The bundled simulated RGB images of one track (``clean`` or ``realworld``), in cube order;
    empty when the sample was built without :mod:`hstool.camera`."""
    suffix = {"clean": "_clean.png", "realworld": "_RealWorld.jpg"}.get(track)
    if suffix is None:
        raise ValueError(f"unknown track '{track}' (use clean or realworld)")
    rgbs = [c.with_name(c.stem + suffix) for c in sample_cubes()]
    return [p for p in rgbs if p.is_file()]
