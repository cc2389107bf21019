"""hstool's command line: one module per command; ``main.py`` assembles them."""
