"""Physically consistent spectra: the minimal change that re-projects exactly to the input RGB.

For a camera whose linear response is ``M`` (B, 3) (``pipeline.matrix(wavelengths)``, so that
``rgb = s @ M`` before noise and quantisation), each recovered spectrum ``s`` is replaced by

    x* = argmin ||x - s||^2  subject to  x @ M = rgb,  x >= 0.

1. Closed form without the bound: ``x0 = s + M (M^T M)^-1 (rgb - M^T s)``, the minimal-norm
   correction in the span of the CSS (null-space projection). When ``x0 >= 0`` it is x*.
2. Otherwise the bound is active and x* = max(0, s + M lam) for the 3-vector ``lam`` that
   maximises the concave dual ``q(lam) = -1/2 ||max(0, s + M lam)||^2 + lam . rgb``; its gradient
   is the re-projection residual ``rgb - M^T x(lam)``. A vectorised semismooth Newton method with
   Armijo backtracking (all failing pixels at once, 3x3 systems) solves it to ~1e-12; see
   Qi & Sun, "A quadratically convergent Newton method for computing the nearest correlation
   matrix", SIAM J. Matrix Anal. Appl. 28(2), 2006, for the same dual construction.
3. Pixels where Newton does not converge are those whose RGB lies on or outside the cone
   ``{M^T x : x >= 0}`` (no, or only a degenerate, non-negative solution; in practice dark pixels
   with a channel quantised to 0). They are solved, vectorised again, with a tiny Tikhonov term on
   the dual, which is the penalty form ``min ||x - s||^2 + ||M^T x - rgb||^2 / reg``: the closest
   non-negative least-squares fit to the RGB, ties broken towards ``s`` (any pixel still not
   converged goes to Lawson-Hanson NNLS on ``[w M^T; I] x ~ [w rgb; s]``). Pixels whose RGB
   residual stays above 1e-6 are reported as infeasible.

No NTIRE entry enforced this; the challenge report measured consistency as back-projection error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls

from hstool.hsdata import HsError


def consistency_camera(camera: Any, track: str = "clean"):
    """The :class:`hstool.camera.Pipeline` behind ``camera`` (as :func:`consistency_matrix` takes
    it), or None for a bare matrix (an array, or nested lists of numbers): its linear response
    and its quantiser's rounding."""
    if isinstance(camera, (np.ndarray, list, tuple)):
        return None
    from hstool import camera as cam

    if camera is True:
        return cam.track(track)
    if isinstance(camera, str):
        try:
            return cam.track(cam.track_name(camera))  # a track, however spelt (Real-World)
        except HsError:
            return cam.track(track, css=cam.load_css(camera))
    if isinstance(camera, cam.Pipeline):
        return camera
    return cam.track(track, css=camera)


def consistency_matrix(camera: Any, wavelengths: np.ndarray, track: str = "clean") -> np.ndarray:
    """The (B, 3) linear response for ``camera``: ``True`` (the track's pipeline), a track or CSS
    name, a ``CSS`` (used within ``track``'s pipeline for its scale), a ``Pipeline``, or a matrix."""
    wavelengths = np.asarray(wavelengths, np.float64)
    if isinstance(camera, (np.ndarray, list, tuple)):
        try:
            m = np.asarray(camera, np.float64)
        except (TypeError, ValueError) as exc:
            raise HsError(f"response matrix is not numbers ({exc})") from None
        if m.shape != (wavelengths.size, 3):
            raise HsError(f"response matrix must be ({wavelengths.size}, 3), got {m.shape}")
    else:
        m = np.asarray(consistency_camera(camera, track).matrix(wavelengths), np.float64)
    check_response(m)  # where it is given, not on the first image
    return m


def check_response(m: np.ndarray) -> None:
    """A response matrix ``(B, 3)`` that fixes spectra: finite, and its three channels independent."""
    if not np.all(np.isfinite(m)):
        raise HsError("response matrix holds NaN or infinite values")
    rank = np.linalg.matrix_rank(m)
    if rank < 3:  # two channels alike (or one blind): no RGB fixes a spectrum
        raise HsError(f"response matrix has rank {rank}, not 3: its channels are not independent")
    with np.errstate(all="ignore"):
        gram = m.T @ m  # what the projection inverts: its scale must survive squaring
        scale = float(np.abs(gram).max())
        if not (np.all(np.isfinite(gram)) and 1e-250 < scale < 1e250 and np.linalg.cond(gram) < 1e14):
            raise HsError("response matrix is too badly scaled or conditioned to invert (rescale it)")


def _newton(s: np.ndarray, c: np.ndarray, m: np.ndarray, lam: np.ndarray, tol: np.ndarray,
            reg: float = 0.0, iterations: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Semismooth Newton on the dual for rows of ``s`` (n, B), ``c`` (n, 3); returns (x, converged).

    ``reg > 0`` maximises ``q(lam) - reg/2 ||lam||^2`` instead: the dual of
    ``min ||x - s||^2 + ||M^T x - c||^2 / reg`` over ``x >= 0``, strongly concave, so it converges
    for every pixel, including those whose RGB no non-negative spectrum reaches (their solution is
    the closest non-negative fit to the RGB as ``reg -> 0``, ties broken towards ``s``).
    """
    x = np.maximum(s + lam @ m.T, 0)
    done = np.zeros(s.shape[0], bool)
    eye = np.eye(3)
    floor = 1e-12 * np.trace(m.T @ m) / 3

    def dual(lv, sv, cv):
        return -0.5 * (np.maximum(sv + lv @ m.T, 0) ** 2).sum(1) + (lv * cv).sum(1) - 0.5 * reg * (lv**2).sum(1)

    act = np.arange(s.shape[0])  # rows still iterating; work is done on these only
    for _ in range(iterations + 1):
        sa, ca, la = s[act], c[act], lam[act]
        za = sa + la @ m.T
        xa = np.maximum(za, 0)
        x[act] = xa
        ra = ca - xa @ m - reg * la
        conv = np.linalg.norm(ra, axis=1) <= tol[act]
        done[act[conv]] = True
        keep = ~conv
        act, sa, ca, la, za, ra = act[keep], sa[keep], ca[keep], la[keep], za[keep], ra[keep]
        if not act.size or _ == iterations:
            break
        d = (za > 0).astype(np.float64)
        hess = (m.T[None] * d[:, None, :]) @ m + eye * (reg + floor)  # M^T D M per pixel
        step = np.linalg.solve(hess, ra[..., None])[..., 0]
        q0 = dual(la, sa, ca)
        slope = (step * ra).sum(1)
        t = np.ones(len(act))
        pending = np.arange(len(act))
        for _k in range(40):  # Armijo backtracking on the concave dual, only where still needed
            trial = la[pending] + t[pending, None] * step[pending]
            ok = dual(trial, sa[pending], ca[pending]) >= q0[pending] + 1e-4 * t[pending] * slope[pending]
            pending = pending[~ok]
            if not pending.size:
                break
            t[pending] *= 0.5
        lam[act] = la + t[:, None] * step
    return x, done


def _nnls_fallback(s: np.ndarray, c: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Closest non-negative least-squares fit to ``c``, tie broken towards ``s`` (per pixel)."""
    weight = 1e4 / max(np.linalg.norm(m), 1e-300)
    a = np.vstack([weight * m.T, np.eye(m.shape[0])])
    out = np.empty_like(s)
    for i in range(s.shape[0]):
        out[i], _ = nnls(a, np.concatenate([weight * c[i], s[i]]), maxiter=50 * a.shape[1])
    return out


def project_consistent(spectra: np.ndarray, rgb: np.ndarray, matrix: np.ndarray,
                       tol: float = 1e-9) -> tuple[np.ndarray, dict[str, int]]:
    """Project ``spectra`` (..., B) onto ``{x >= 0 : x @ matrix = rgb}`` pixel by pixel.

    Returns ``(projected float32, info)``; ``info`` counts ``corrected`` pixels that needed the
    constrained solve and ``infeasible`` pixels whose RGB no non-negative spectrum reproduces
    (those get the closest non-negative least-squares fit).

    >>> x, info = project_consistent(cube, rgb, track("clean").matrix(wl))  # doctest: +SKIP
    """
    m = np.asarray(matrix, np.float64)
    spectra = np.asarray(spectra)
    shape = spectra.shape
    if shape[-1] != m.shape[0] or m.shape[1] != 3:
        raise HsError(f"response matrix {m.shape} does not fit {shape[-1]} bands")
    if np.asarray(rgb).shape != shape[:-1] + (3,):
        raise HsError(f"RGB shape {np.asarray(rgb).shape} does not match spectra {shape}")
    check_response(m)
    out = np.empty(shape, np.float32)
    flat_out = out.reshape(-1, shape[-1])
    flat_s = spectra.reshape(-1, shape[-1])
    flat_c = np.asarray(rgb).reshape(-1, 3)
    gram_inv = np.linalg.inv(m.T @ m)
    reg = 1e-9 * np.trace(m.T @ m) / 3  # penalty 1/reg on the RGB misfit where no exact solution exists
    corrected = infeasible = 0
    chunk = 1 << 16
    for i0 in range(0, flat_s.shape[0], chunk):
        s = flat_s[i0:i0 + chunk].astype(np.float64)
        c = flat_c[i0:i0 + chunk].astype(np.float64)
        lam = (c - s @ m) @ gram_inv  # multipliers of the closed-form correction
        x = s + lam @ m.T
        bad = np.flatnonzero((x < 0).any(1))
        if bad.size:
            corrected += bad.size
            tol_b = tol * (1 + np.linalg.norm(c[bad], axis=1))
            xb, ok = _newton(s[bad], c[bad], m, lam[bad].copy(), tol_b, iterations=25)
            x[bad] = xb
            fail = bad[~ok]
            if fail.size:  # on or outside the cone: the regularised dual always converges
                tol_f = tol * (1 + np.linalg.norm(c[fail], axis=1))
                xf, okf = _newton(s[fail], c[fail], m, lam[fail].copy(), tol_f, reg=reg, iterations=100)
                if (~okf).any():  # rare: exact per-pixel NNLS
                    xf[~okf] = _nnls_fallback(s[fail[~okf]], c[fail[~okf]], m)
                x[fail] = xf
                resid = np.linalg.norm(xf @ m - c[fail], axis=1)
                infeasible += int((resid > 1e-6 * (1 + np.linalg.norm(c[fail], axis=1))).sum())
        flat_out[i0:i0 + chunk] = np.maximum(x, 0)
    return out, {"corrected": int(corrected), "infeasible": int(infeasible)}
