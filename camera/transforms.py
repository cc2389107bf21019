"""Auxiliary transforms of the NTIRE 2020 extended evaluation (Arad et al., CVPRW 2020, sec. 4.2,
Table 3): brightness changes (scale the cube, then re-simulate) and spatial shuffling (cut the
image into 4x4 patches and permute them at random, the same way for the cube and its RGB)."""

from __future__ import annotations

import numpy as np

from hstool.hsdata import Cube, HsError


def scale_brightness(cube: Cube, k: float) -> Cube:
    """The cube with every value multiplied by ``k`` (the paper's x0.5 and x2 brightness tests).

    >>> scale_brightness(Cube(np.ones((2, 2, 31), np.float32), np.arange(400, 701, 10)), 0.5).data.max()
    0.5
    """
    if not np.isfinite(k) or k < 0:
        raise HsError(f"brightness factor must be a finite number >= 0, got {k}")
    data = np.asarray(cube.data)
    dtype = data.dtype if np.issubdtype(data.dtype, np.floating) else np.float32
    return cube.with_data((data * dtype.type(k)).astype(dtype, copy=False), brightness=float(k))


def shuffle_patches(*arrays: np.ndarray, block: int = 4, rng=None) -> list[np.ndarray]:
    """Apply one random permutation of ``block x block`` patches to every ``(H, W, ...)`` array.

    Rows and columns beyond the last full block stay where they are. ``rng``: a seed or a
    ``numpy.random.Generator``. Returns new arrays, inputs untouched.
    """
    if not arrays:
        return []
    if block < 1:
        raise HsError(f"patch size must be >= 1, got {block}")
    h, w = arrays[0].shape[:2]
    for a in arrays:
        if a.shape[:2] != (h, w):
            raise HsError(f"arrays to shuffle together must share height and width: {a.shape[:2]} vs {(h, w)}")
    nh, nw = h // block, w // block
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    perm = gen.permutation(nh * nw)
    out = []
    for a in arrays:
        a = np.asarray(a)
        b = a.copy()
        if nh and nw:
            rest = a.shape[2:]
            region = a[: nh * block, : nw * block]
            tiles = region.reshape(nh, block, nw, block, *rest).swapaxes(1, 2).reshape(nh * nw, block, block, *rest)
            tiles = tiles[perm].reshape(nh, nw, block, block, *rest).swapaxes(1, 2)
            b[: nh * block, : nw * block] = tiles.reshape(nh * block, nw * block, *rest)
        out.append(b)
    return out
