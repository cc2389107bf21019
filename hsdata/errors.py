"""The one error type the library raises for bad input, so the CLI can print it as one line."""

from __future__ import annotations

from pathlib import Path


class HsError(Exception):
    """A user-facing problem with an input or output: names the file and says what is wrong.

    The CLI prints ``str(err)`` as one line (``path: problem``) and exits non-zero; library users
    catch it like any exception.
    """

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.message = message
        super().__init__(f"{path}: {message}" if path is not None else message)

    def __reduce__(self):  # survives worker processes with its path intact
        return (type(self), (self.message, self.path))
