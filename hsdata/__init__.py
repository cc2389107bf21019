"""hsdata: hyperspectral cubes and the files they live in."""

from .atomic import atomic_path, atomic_paths, check_writable
from .cube import ARAD_WAVELENGTHS, Cube
from .errors import HsError
from .formats import (
    CUBE_FORMATS,
    broken_links,
    detect_format,
    input_files,
    list_files,
    output_files,
    output_path,
    read_cube,
    write_cube,
)
from .formats.image import read_rgb, write_rgb

__all__ = [
    "ARAD_WAVELENGTHS",
    "CUBE_FORMATS",
    "broken_links",
    "Cube",
    "HsError",
    "atomic_path",
    "atomic_paths",
    "check_writable",
    "detect_format",
    "input_files",
    "list_files",
    "output_files",
    "output_path",
    "read_cube",
    "read_rgb",
    "write_cube",
    "write_rgb",
]
