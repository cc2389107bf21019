"""The one error type the library raises for bad input, so the CLI can print it as one line."""

from __future__ import annotations

import math
import numbers
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


#: how much of another library's message an error line quotes (PyTorch's and OpenCV's run to
#: paragraphs of advice): with the file's path and hstool's words, a line stays under 300 characters
FOREIGN_WIDTH = 160


def brief(exc: BaseException | str) -> str:
    """Another library's error message as one line of at most :data:`FOREIGN_WIDTH` characters:
    whitespace folded, its middle cut when longer (the start says what failed, the end often why)."""
    text = " ".join(str(exc).split()) or (type(exc).__name__ if isinstance(exc, BaseException) else "")
    if len(text) <= FOREIGN_WIDTH:
        return text
    head = FOREIGN_WIDTH // 2
    return text[:head] + "…" + text[len(text) - (FOREIGN_WIDTH - head - 1):]


def check_positive(value: float | None, name: str, zero: bool = False) -> None:
    """Refuse a value that is not a finite number > 0 (``zero``: >= 0); ``None`` (unset) passes."""
    if value is None:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if zero else value > 0)
    if not ok:
        shown = repr(value) if isinstance(value, str) else value  # '5', the text, is no number
        raise HsError(f"{name} must be a {'number >= 0' if zero else 'positive number'}, got {shown}")
