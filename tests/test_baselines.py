"""Pixel-wise baselines: closed-form fits, exposure invariance, sparse coding, bundled weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hstool.recon.models.linear import LinearRecon
from hstool.recon.models.rootpoly import RootPolyRecon
from hstool.recon.models.sparse import SparseRecon, omp, omp_decode

WL = np.arange(400.0, 701.0, 10.0)


def run(model, rgb: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N, B) through the module's forward."""
    with torch.no_grad():
        y = model(torch.from_numpy(rgb.T.reshape(1, 3, 1, -1).astype(np.float32)))
    return y[0, :, 0].numpy().T


def test_linear_recovers_a_known_linear_map():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 31))
    rgb = rng.random((1000, 3))
    model = LinearRecon.fit(rgb, rgb @ w)
    np.testing.assert_allclose(model.weight.numpy(), w, atol=1e-5)
    np.testing.assert_allclose(run(model, rgb[:10]), rgb[:10] @ w, atol=1e-5)


def root_poly_features(rgb: np.ndarray) -> np.ndarray:
    """Degree-2 root-polynomial terms written out (Finlayson et al. 2015, Table I)."""
    r, g, b = rgb.T
    return np.stack([r, g, b, np.sqrt(r * g), np.sqrt(r * b), np.sqrt(g * b)], 1)


def test_rootpoly_recovers_a_known_root_polynomial_map():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 31))
    rgb = rng.random((2000, 3))
    model = RootPolyRecon.fit(rgb, root_poly_features(rgb) @ w, degree=2)
    np.testing.assert_allclose(model.weight.numpy(), w, atol=1e-4)
    assert [len(RootPolyRecon(degree=d).terms) for d in (2, 3, 4)] == [6, 13, 22]


@pytest.mark.parametrize("degree", [2, 3])
def test_rootpoly_is_exposure_invariant(degree):
    rng = np.random.default_rng(2)
    rgb = rng.random((3000, 3)) * 0.5 + 0.01
    spectra = 0.1 + rng.random((3000, 31)) * 0.01 + rgb @ rng.random((3, 31))
    model = RootPolyRecon.fit(rgb, spectra, degree=degree)
    base = run(model, rgb)
    mrae = np.mean(np.abs(base - spectra) / spectra)
    for k in (0.5, 2.0, 0.25, 4.0):  # powers of two: bit-exact
        scaled = run(model, rgb * k)
        np.testing.assert_array_equal(scaled, k * base)
        assert abs(np.mean(np.abs(scaled - k * spectra) / (k * spectra)) - mrae) < 1e-6
    for k in (0.3, 3.7):  # other factors: float32 rounding only
        np.testing.assert_allclose(run(model, rgb * k), k * base, rtol=1e-4, atol=1e-6)


def test_omp_finds_an_exact_sparse_code():
    rng = np.random.default_rng(3)
    atoms = torch.from_numpy(rng.normal(size=(31, 40)))
    code = torch.zeros(40, dtype=torch.float64)
    code[[3, 17]] = torch.tensor([1.5, -0.7], dtype=torch.float64)
    index, coef = omp((atoms @ code)[None], atoms, 2)
    assert sorted(index[0].tolist()) == [3, 17]
    np.testing.assert_allclose(sorted(coef[0].tolist()), [-0.7, 1.5], atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("atoms", [1, 5, 64])
def test_omp_decode_matches_omp(dtype, atoms):
    """The closed-form path for 1 and 2 atoms reproduces omp + decoding up to float rounding,
    zero signals and chunk boundaries included; 3 atoms go through omp itself."""
    g = torch.Generator().manual_seed(atoms)
    proj = torch.randn(3, atoms, generator=g, dtype=dtype)
    dic = torch.randn(31, atoms, generator=g, dtype=dtype)
    y = torch.rand(2500, 3, generator=g, dtype=dtype)
    y[:5] = 0
    for sparsity in (1, 2, 3):
        index, coef = omp(y, proj, sparsity)
        expected = (coef[:, None, :] @ dic.t()[index])[:, 0]
        got = omp_decode(y, proj, dic, sparsity, chunk=1000)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(got, expected, rtol=tol, atol=tol)


def test_sparse_coding_recovers_spectra_of_a_few_materials():
    """Pixels mix at most two of eight smooth materials: a dictionary learned from them should
    recover the spectra from RGB far better than the mean spectrum does (RGB leaves the mixtures
    metameric, so no pixel-wise method reaches zero here)."""
    rng = np.random.default_rng(4)
    centres = np.linspace(420, 680, 8)
    materials = 0.05 + np.exp(-0.5 * ((WL - centres[:, None]) / 40) ** 2)  # (8, 31)
    n = 3000
    pick = rng.integers(0, 8, (n, 2))
    mix = rng.random((n, 1))
    spectra = (mix * materials[pick[:, 0]] + (1 - mix) * materials[pick[:, 1]]) * rng.uniform(0.3, 1, (n, 1))
    css = np.stack([np.exp(-0.5 * ((WL - c) / 35) ** 2) for c in (600, 540, 450)], 1) / 10
    rgb = spectra @ css
    model = SparseRecon.fit(rgb[:2000], spectra[:2000], atoms=24, iterations=6)
    pred = run(model, rgb[2000:])
    gt = spectra[2000:]
    err = np.mean(np.abs(pred - gt) / gt)
    baseline = np.mean(np.abs(gt.mean(0) - gt) / gt)
    assert err < 0.5 and err < baseline / 4, (err, baseline)
    np.testing.assert_allclose(run(model, 2 * rgb[2000:2010]), 2 * pred[:10], rtol=1e-4, atol=1e-6)
