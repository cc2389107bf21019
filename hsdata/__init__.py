"""hsdata: hyperspectral cubes and the files they live in.

The names below but :class:`HsError` are imported on first use (PEP 562), as in ``hstool.recon``:
the readers pull in h5py, OpenCV and SPy, which ``hstool --help`` and the commands that read no
files need not wait for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import HsError
from .lazy import lazy_names

_LAZY = {
    "ARAD_WAVELENGTHS": "cube",
    "CUBE_FORMATS": "formats",
    "Cube": "cube",
    "atomic_path": "atomic",
    "atomic_paths": "atomic",
    "broken_links": "formats",
    "check_writable": "atomic",
    "detect_format": "formats",
    "input_files": "formats",
    "list_files": "formats",
    "output_files": "formats",
    "output_path": "formats",
    "read_cube": "formats",
    "read_rgb": "formats.image",
    "write_cube": "formats",
    "write_rgb": "formats.image",
}

__all__ = [  # HsError and the keys of _LAZY
    "ARAD_WAVELENGTHS",
    "CUBE_FORMATS",
    "Cube",
    "HsError",
    "atomic_path",
    "atomic_paths",
    "broken_links",
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


__getattr__ = lazy_names(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from .atomic import atomic_path, atomic_paths, check_writable
    from .cube import ARAD_WAVELENGTHS, Cube
    from .formats import (
        CUBE_FORMATS,
        detect_format,
        input_files,
        list_files,
        output_files,
        output_path,
        read_cube,
        write_cube,
    )
    from .formats.image import read_rgb, write_rgb
