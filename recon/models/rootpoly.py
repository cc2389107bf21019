"""Root-polynomial regression from RGB to spectra (Finlayson, Mackiewicz & Hurlbert 2015).

The features are the k-th roots of the degree-k monomials of (r, g, b), e.g. for degree 2
``r, g, b, sqrt(rg), sqrt(gb), sqrt(rb)``. Every term is homogeneous of degree one, so scaling
the input by ``k`` scales every feature, and hence the recovered spectrum, by exactly ``k``:
the regression is exposure invariant by construction, unlike an ordinary polynomial.
Degree 2 has 6 terms, degree 3 has 13 and degree 4 has 22 (Table I of the paper).

References
----------
Finlayson, G. D., Mackiewicz, M., Hurlbert, A. "Color Correction Using Root-Polynomial
Regression", IEEE Transactions on Image Processing 24(5), 1460-1470, 2015.
Lin, Y.-T., Finlayson, G. D. "Exposure Invariance in Spectral Reconstruction from RGB Images",
Color and Imaging Conference 2019 (root-polynomial spectral reconstruction).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from hstool.recon.models.linear import FeatureRegression
from hstool.recon.registry import register_model


def exponents(degree: int) -> list[tuple[int, int, int]]:
    """Distinct monomials r^a g^b b^c of total degree 1..degree, reduced to their lowest degree
    (sqrt(r^2) is r), in the paper's order: degree 1 terms first."""
    seen, terms = set(), []
    for d in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(3), d):
            e = tuple(combo.count(c) for c in range(3))
            g = np.gcd.reduce([x for x in e if x] + [d])
            key = tuple(x / d for x in e)
            if key in seen:
                continue
            seen.add(key)
            terms.append(tuple(int(x // g) for x in e) + (int(d // g),))
    return terms  # (a, b, c, root) with feature = (r^a g^b b^c)^(1/root)


class RootPolyRecon(FeatureRegression):
    """Spectrum = root-polynomial features @ weight."""

    def __init__(self, out_bands: int = 31, degree: int = 2):
        if degree not in (1, 2, 3, 4):
            raise ValueError("root-polynomial degree must be 1, 2, 3 or 4")
        terms = exponents(degree)
        super().__init__(out_bands, len(terms))
        self.degree = degree
        self.terms = terms

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # float64 roots, rounded once to float32: scaling the input by a power of two then
        # scales every feature, and so the output, bit-exactly
        x = x.double().clamp(min=0)
        out = []
        for a, b, c, root in self.terms:
            prod = x[:, 0:1] ** a * x[:, 1:2] ** b * x[:, 2:3] ** c
            out.append(prod if root == 1 else torch.sqrt(prod) if root == 2 else prod ** (1.0 / root))
        return torch.cat(out, dim=1).float()

    def features_np(self, rgb: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(rgb, np.float64), 0, None)
        cols = [(x[:, 0] ** a * x[:, 1] ** b * x[:, 2] ** c) ** (1.0 / root) for a, b, c, root in self.terms]
        return np.stack(cols, axis=1)


@register_model(
    "rootpoly",
    kind="pixel",
    multiple=1,
    halo=0,
    description="Root-polynomial regression RGB -> spectrum (pixel-wise, exposure invariant by construction)",
    reference="Finlayson, Mackiewicz & Hurlbert, IEEE TIP 2015",
)
def rootpoly(out_bands: int = 31, degree: int = 2) -> RootPolyRecon:
    return RootPolyRecon(out_bands, degree)
