"""Shared fixtures: a small realistic cube factory and a CLI runner."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from hstool.hsdata import ARAD_WAVELENGTHS, Cube


def make_cube(
    height: int = 24,
    width: int = 32,
    wavelengths: np.ndarray = ARAD_WAVELENGTHS,
    seed: int = 0,
    dtype=np.float32,
    **meta,
) -> Cube:
    """A cube of smooth, positive spectra (a few Gaussian bumps on a baseline) that vary over the
    image, so every pixel and band differs and an axis swap or flip cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    wl = np.asarray(wavelengths, dtype=np.float64)
    y, x = np.mgrid[0:height, 0:width]
    u, v = y / max(height - 1, 1), x / max(width - 1, 1)
    centres = wl[0] + (wl[-1] - wl[0]) * rng.uniform(0.1, 0.9, 3)
    data = 0.05 + 0.02 * u[..., None] + 0.01 * v[..., None] + np.zeros(wl.size)
    for k, c in enumerate(centres):
        amp = 0.2 + 0.3 * np.cos(np.pi * (u + k * v) / 2) ** 2  # (H, W), in [0.2, 0.5]
        data = data + amp[..., None] * np.exp(-0.5 * ((wl - c) / 40.0) ** 2)
    meta.setdefault("units", "reflectance")
    return Cube(data.astype(dtype), wl, meta)


@pytest.fixture
def tmp_cube():
    """Factory: ``tmp_cube(height=24, width=32, wavelengths=ARAD_WAVELENGTHS, seed=0, **meta)``."""
    return make_cube


@pytest.fixture
def runner() -> CliRunner:
    """A Typer CliRunner: ``runner.invoke(app, [...])`` with ``from hstool.cli.main import app``
    (or use the ``hstool`` fixture). Click >= 8.2 keeps stderr apart: ``result.stderr``."""
    return CliRunner()


@pytest.fixture
def hstool(runner):
    """``hstool("info", path)`` -> click Result, invoking ``hstool.cli.main.app`` in-process."""
    from hstool.cli.main import app

    def invoke(*args, **kwargs):
        return runner.invoke(app, [str(a) for a in args], **kwargs)

    return invoke
