"""The ``hstool`` command: assembles one Typer command per module and guards them all.

Every command runs inside :func:`guarded`: a library error (:class:`HsError`, a missing file, a
broken input) becomes one red line naming the file and the problem and a non-zero exit, with no
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Annotated

import typer
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from hstool.hsdata.errors import HsError, brief

from .output import BROKEN_PIPE, DEBUG, error, set_verbosity, silence

#: every command, in the order `hstool --help` lists them, and its line there; command NAME is the
#: function NAME of module ``cli/NAME.py``, whose docstring is its own --help
COMMANDS = {
    "demo": "Simulate, reconstruct and score the bundled sample scenes.",
    "calibrate": "Specim IQ captures -> calibrated 31-band cubes (the ARAD recipe).",
    "simulate": "Hyperspectral cubes -> the RGB a camera records (NTIRE tracks).",
    "recon": "RGB images -> 31-band cubes, with a bundled model or baseline.",
    "score": "Score reconstructions against ground truth, as NTIRE did.",
    "evaluate": "The challenge's extended evaluation (its Table 3) of one model.",
    "train": "Train or fit a model; its weights record how to redo it.",
    "models": "List models and weights, describe a weights file, export to ONNX.",
    "convert": "Cubes from one format or band grid to another (.mat, ENVI, .npy).",
    "synth": "Generate synthetic hyperspectral scenes from measured spectra.",
    "render": "Render a cube as an sRGB preview, with pixels' spectra (PNG).",
    "info": "Describe cubes and images: shape, bands, value range, metadata.",
}


def _loudness(level: int) -> Callable:
    def apply(given: bool) -> None:
        if given:
            set_verbosity(level)

    return apply


def _loud(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", callback=_loudness(-1), rich_help_panel="Input/output",
                                        help="Errors only: no progress, notes or warnings.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", callback=_loudness(1), rich_help_panel="Input/output",
                                          help="A line per file, not a progress bar.")] = False,
) -> None:
    """The options -q/--quiet and -v/--verbose, which every command takes (see :func:`load`)."""


@functools.cache
def load(name: str) -> TyperCommand:
    """Command ``name``, its module imported now: a command's imports (OpenCV, h5py, PyTorch where
    it runs a model) cost only the command that runs, not ``--help`` or another command."""
    fn = getattr(importlib.import_module(f"hstool.cli.{name}"), name)
    one = typer.Typer(rich_markup_mode="rich", pretty_exceptions_enable=False, add_completion=False)
    one.command(name, short_help=COMMANDS[name], help=reflow(fn.__doc__))(guarded(fn))
    command = typer.main.get_command(one)
    probe = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    probe.command()(_loud)
    loud = typer.main.get_command(probe)
    for param in loud.params[:2]:
        param.expose_value = False  # set the verbosity; the command's function never sees them
    command.params[-1:-1] = loud.params[:2]  # before --help
    for param in command.params:  # `hstool render CUBE_PATH OUT`, not typer's `{cube_path} {out}`
        if isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
    return command


class Commands(TyperGroup):
    """hstool's commands, each imported when it runs; ``hstool --help`` lists them from
    :data:`COMMANDS` alone."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name, summary in COMMANDS.items():  # placeholders, for listings
            self.commands[name] = TyperCommand(name, short_help=summary)
        self.listing = False

    def get_command(self, ctx, name: str):
        if name in COMMANDS and not self.listing:
            self.commands[name] = load(name)
        return self.commands.get(name)

    def format_help(self, ctx, formatter) -> None:
        self.listing = True
        try:
            return super().format_help(ctx, formatter)
        finally:
            self.listing = False


_display_type = TyperOption.display_type_rich


def _display_type_rich(self: TyperOption, ctx) -> str | None:
    """An option's value in ``--help``, short: none for a flag (typer shows ``<bool>``), ``<int>``
    for ``<int range>`` (the range is checked, and said when a value is out of it)."""
    return None if self.is_flag else (_display_type(self, ctx) or "").replace(" range>", ">") or None


TyperOption.display_type_rich = _display_type_rich
TyperOption._get_number_range_help_str = lambda self: None  # the ``[x>=1]`` beside it, too wide


def _usage_display_name(self: TyperArgument) -> str:
    """An argument in the usage line as git and rio write it: ``IMAGES...``, ``[OUT]`` when optional
    (typer writes ``{inputs}...``)."""
    name = self.metavar or self.name.upper() + ("..." if self.nargs != 1 else "")
    return name if self.required or name.startswith("[") else f"[{name}]"


TyperArgument._usage_display_name = _usage_display_name

app = typer.Typer(
    name="hstool",
    cls=Commands,
    help="Hyperspectral imaging from the command line: calibrate Specim IQ captures, simulate cameras, "
    "reconstruct spectra from RGB and score them as the NTIRE challenges did.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    from importlib.metadata import PackageNotFoundError, version

    if value:
        try:
            print(version("hstool"))
        except PackageNotFoundError:
            print("unknown")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """hstool: hyperspectral imaging and spectral reconstruction from RGB."""
    DEBUG["on"] = debug or bool(os.environ.get("HSTOOL_DEBUG"))
    set_verbosity(0)  # until the command's own -q or -v


def guarded(fn: Callable) -> Callable:
    """Turn library errors into one line and exit code 1 (130 for an interrupted run)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:  # `hstool ... --json | head`: the reader has what it wanted
            silence(sys.stdout)
            raise typer.Exit(BROKEN_PIPE) from None
        except HsError as exc:
            if DEBUG["on"]:
                raise
            error(" ".join(str(exc).split()))  # one line even when a library's message has several
            raise typer.Exit(1) from None
        except (OSError, ValueError, RuntimeError, MemoryError) as exc:
            if DEBUG["on"]:
                raise
            where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
            problem = brief(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)  # one short line
            problem = problem or type(exc).__name__  # never empty
            error(f"{where}{problem} (run with --debug for the traceback)")
            raise typer.Exit(1) from None

    return wrapper


def reflow(doc: str | None) -> str:
    """A docstring as ``--help`` text: each paragraph one line for rich to wrap to the terminal
    (it keeps a docstring's own line breaks, which then break mid-sentence), but for examples: a
    line ``$ hstool ...`` stays a line of its own."""
    paragraphs = []
    for paragraph in inspect.cleandoc(doc or "").split("\n\n"):
        lines: list[str] = []
        for line in paragraph.splitlines():
            line = " ".join(line.split())
            if lines and not line.startswith("$ ") and not lines[-1].startswith("$ "):
                lines[-1] += " " + line
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def run() -> None:
    """Console-script entry point. A usage error (a missing argument, a value out of range, a
    file where a folder belongs) is one line and exit code 2, like every other error, instead
    of click's boxed usage text."""
    try:
        code = app(standalone_mode=False, prog_name="hstool")
    except typer.Abort:
        error("interrupted")
        sys.exit(130)
    except BrokenPipeError:  # `hstool --help | head`: the help is printed outside any command
        silence(sys.stdout)
        sys.exit(BROKEN_PIPE)
    except Exception as exc:  # click's (or typer's vendored click's) ClickException, by its interface
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        message = " ".join(exc.format_message().split())
        if message:  # none when the help was shown for a bare command
            ctx = getattr(exc, "ctx", None)
            error(f"{ctx.command_path + ': ' if ctx is not None else ''}{message} (see --help)")
        sys.exit(exc.exit_code)
    try:
        sys.stdout.flush()  # the last of the output, while a closed pipe can still be told apart
    except BrokenPipeError:
        silence(sys.stdout)
        sys.exit(BROKEN_PIPE)
    sys.exit(code if isinstance(code, int) else 0)
