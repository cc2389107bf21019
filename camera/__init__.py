"""camera: the physics of capture — CSS projection, mosaic, noise, demosaic, encoding.

>>> from hstool.camera import simulate, track
>>> rgb = simulate(cube, track("realworld", npe=2000), rng=0)  # doctest: +SKIP
"""

from .pipeline import (
    TRACKS,
    Pipeline,
    capture,
    capture_raw,
    capture_seeds,
    file_seed,
    image_track,
    render,
    simulate,
    simulate_to_file,
    track,
    track_name,
)
from .sensitivity import CSS, list_css, load_css, plot_css, read_css, write_css_csv
from .transforms import scale_brightness, shuffle_patches

__all__ = [
    "CSS",
    "TRACKS",
    "Pipeline",
    "capture",
    "capture_raw",
    "capture_seeds",
    "file_seed",
    "image_track",
    "list_css",
    "load_css",
    "plot_css",
    "read_css",
    "render",
    "scale_brightness",
    "shuffle_patches",
    "simulate",
    "simulate_to_file",
    "track",
    "track_name",
    "write_css_csv",
]
