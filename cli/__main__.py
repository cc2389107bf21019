"""``python -m hstool.cli ...``: the ``hstool`` command where its script is not on PATH."""

from .main import run

if __name__ == "__main__":
    run()
