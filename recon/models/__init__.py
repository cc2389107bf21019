"""One file per architecture; each ends with a registered factory."""
