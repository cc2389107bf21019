"""Names a package imports on first use (PEP 562), so that ``hstool --help`` and the commands that
need neither wait for h5py, OpenCV or PyTorch: ``hstool.hsdata`` and ``hstool.recon`` use it."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_names(package: str, table: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: a name of ``table`` from its submodule (looked up
    anew each time, so a patched ``engine.Reconstructor`` is what ``hstool.recon.Reconstructor``
    gives), or a submodule itself (``hstool.recon.engine`` after a bare ``import hstool.recon``)."""

    def getattr_(name: str) -> object:
        module = table.get(name)
        if module is not None:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise  # the submodule exists and failed to import something
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return getattr_
