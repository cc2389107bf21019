"""Where output goes: the results a person asked for (tables) and machine output (``--json``) to
stdout; progress bars, notes, warnings and errors to stderr, as git, rio and curl do, so that
``hstool models | grep mstpp`` and ``hstool score pred/ gt/ > scores.txt`` keep the results."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

#: ``--debug`` (or HSTOOL_DEBUG): show tracebacks instead of one-line errors
DEBUG = {"on": bool(os.environ.get("HSTOOL_DEBUG"))}
# markup and emoji codes off: file names such as "scene [old].mat" or "x:smile:.mat" print as they
# are; a message that styles itself says markup=True and escapes what it quotes (:func:`error`)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
#: off a terminal (a log, a pipe, CI) a table keeps its natural width up to this many columns
#: instead of rich's default 80, which folded file names and numbers mid-cell; COLUMNS still rules
LOG_WIDTH = 240
#: -q/--quiet (-1: errors only), 0, -v/--verbose (1: a line per file instead of a progress bar)
VERBOSITY = {"level": 0}
#: errors print even with --quiet, which silences ``err``
_errors = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
#: exit code when the reader of the output went away (128 + SIGPIPE, as a program the signal ends)
BROKEN_PIPE = 141


def silence(stream) -> None:
    """Point ``stream`` at /dev/null: its reader has gone, and flushing what is left at exit must not
    raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())


def _gone(console: Console) -> None:
    """rich's own broken-pipe handling exits 1 after pointing stdout (even when stderr broke) at
    /dev/null; hstool silences the stream that broke and exits as SIGPIPE would. Set on rich's
    Console class, so that typer's consoles (--help) do the same as hstool's."""
    silence(console.file)
    raise SystemExit(BROKEN_PIPE)


Console.on_broken_pipe = _gone
for _console in (err, out, _errors):
    if not _console.is_terminal and "COLUMNS" not in os.environ:
        _console.width = LOG_WIDTH


#: every metric's column header, the same in score, evaluate, demo and the benchmarks
HEADERS = {
    "mrae": "MRAE",
    "rmse": "RMSE",
    "psnr": "PSNR dB",
    "sam": "SAM rad",
    "ssim": "SSIM",
    "weighted": "Weighted",
    "backprojection": "Back-proj.",
    "physical": "Physical",
    "physical_linear": "Phys. linear",
    "spatial": "Spatial",
    "brightness_0.5": "×0.5",
    "brightness_2": "×2",
}


def _numpy():
    """numpy when something has imported it (else no value can be a numpy one): ``--help`` and
    ``models`` start without it."""
    return sys.modules.get("numpy")


def _jsonable(value: Any) -> Any:
    np = _numpy()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if np is not None and isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def print_json(data: Any) -> None:
    """Strict JSON on stdout (non-finite floats become "inf"/"-inf"/null)."""
    print(json.dumps(_jsonable(data), indent=2))


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell."""
    np = _numpy()
    if isinstance(value, float) or (np is not None and isinstance(value, np.floating)):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) < 10 ** -(digits) or abs(value) >= 1e6):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}f}"
    return str(value)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[fmt(v) for v in r])
    return t


def show(result: Table) -> None:
    """A result table, on stdout."""
    out.print(result)


def set_verbosity(level: int) -> None:
    """-1 (--quiet: nothing on stderr but errors), 0, or 1 (--verbose)."""
    VERBOSITY["level"] = level
    err.quiet = level < 0


def verbose() -> bool:
    """Whether -v/--verbose asked for a line per file instead of a progress bar."""
    return VERBOSITY["level"] > 0


def file_done(what: str) -> None:
    """With -v/--verbose, a line for each file done (a progress bar's step otherwise)."""
    if verbose():
        err.print(f"done: {what}")


def error(message: str) -> None:
    _errors.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
