"""The command as a process. Start-up cost: PyTorch takes most of a second to import, so only the
commands that run a model (recon, train, evaluate, models, demo) may pull it in, and only when they
run. And its end when the reader of its output has gone."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hstool.recon


def _imports_torch(code: str) -> bool:
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def test_the_cli_and_the_numpy_parts_of_recon_start_without_torch():
    assert not _imports_torch("import hstool.cli.main")
    assert not _imports_torch("from hstool.recon import clusters, evaluate, metrics, consistency")
    assert not _imports_torch("from hstool.cli.main import app\napp(['--help'], standalone_mode=False)")
    assert _imports_torch("from hstool.recon import Reconstructor")  # the probe does see an import
    # a submodule is an attribute after a bare import, as before the names were lazy (README's
    # hstool.recon.engine.REUSE_FREED_MEMORY), and that does import torch
    assert _imports_torch("import hstool.recon\nassert hstool.recon.engine.REUSE_FREED_MEMORY in (True, False)")


def test_every_lazy_name_of_recon_resolves_and_is_listed():
    assert sorted(hstool.recon.__all__) == sorted(hstool.recon._LAZY)
    for name in hstool.recon.__all__:
        assert getattr(hstool.recon, name).__name__ == name
    assert set(hstool.recon.__all__) <= set(dir(hstool.recon))


def test_help_paragraphs_wrap_to_the_terminal_not_to_the_docstring():
    """A docstring's own line breaks fell mid-sentence in --help; each paragraph is reflowed."""
    from hstool.cli.main import reflow

    assert reflow("""One line,
        then more.

        Second   paragraph.""") == "One line, then more.\n\nSecond paragraph."
    env = {**__import__("os").environ, "COLUMNS": "300"}
    out = subprocess.run([sys.executable, "-m", "hstool.cli", "calibrate", "--help"], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert "OUT/NAME.json with all metadata (source, mode, formula, dropped columns," in out


@pytest.mark.parametrize("args, closed", [
    (("models", "--json"), "stdout"),  # `hstool models --json | head`
    (("models",), "stdout"),  # tables go to stdout: `hstool models | head` (rich exited 1)
    (("models", "export", "nosuch", "x.onnx"), "stderr"),  # an error: `hstool ... 2>&1 | head`
    (("--help",), "stdout"),  # typer prints the help with its own rich console
])
def test_a_closed_pipe_ends_the_command_as_sigpipe_would(args, closed):
    """The reader went away before the command wrote: no error text, no traceback, exit code 141."""
    p = subprocess.Popen([sys.executable, "-m", "hstool.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gone, other = (p.stdout, p.stderr) if closed == "stdout" else (p.stderr, p.stdout)
    gone.close()
    said = other.read().decode()
    other.close()
    assert p.wait(timeout=120) == 141 and said == ""

