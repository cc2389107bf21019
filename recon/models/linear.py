"""Linear regression from RGB to spectra: the simplest pixel-wise baseline.

Each spectrum is ``s = W^T rgb`` with ``W`` (3, B) fitted by least squares on training pixels
(no offset, so a black pixel maps to a black spectrum and the map is exposure invariant).
A linear map can only reach the 3-D subspace it spans; the NTIRE 2018/2020 reports list it as
the floor every learned method must beat.

References
----------
Arad, B., Ben-Shahar, O., Timofte, R., et al. "NTIRE 2018 challenge on spectral reconstruction
from RGB images", CVPR Workshops 2018 (baselines).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hstool.recon.registry import register_model


def least_squares(features: np.ndarray, spectra: np.ndarray, ridge: float = 1e-9) -> np.ndarray:
    """``W`` minimising ``||F W - S||^2 + ridge * tr(F^T F) / n_features * ||W||^2`` (float64).

    The ridge is relative to the features' energy, so it does not depend on the data's scale.
    """
    f = np.asarray(features, np.float64)
    s = np.asarray(spectra, np.float64)
    if f.ndim != 2 or s.ndim != 2 or f.shape[0] != s.shape[0]:
        raise ValueError(f"need (N, F) features and (N, B) spectra, got {f.shape} and {s.shape}")
    gram = f.T @ f
    gram += np.eye(gram.shape[0]) * ridge * max(np.trace(gram) / gram.shape[0], 1e-300)
    return np.linalg.solve(gram, f.T @ s)


class FeatureRegression(nn.Module):
    """``spectrum = features(rgb) @ weight``; ``weight`` (F, B) is a buffer filled by ``fit``."""

    def __init__(self, out_bands: int = 31, n_features: int = 3):
        super().__init__()
        self.out_bands = out_bands
        self.register_buffer("weight", torch.zeros(n_features, out_bands))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, F, H, W)."""
        return x

    def features_np(self, rgb: np.ndarray) -> np.ndarray:
        """(N, 3) -> (N, F), the same terms as :meth:`features`, in float64."""
        return np.asarray(rgb, np.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        f = self.features(x.float()).permute(1, 0, 2, 3).reshape(self.weight.shape[0], -1)
        y = self.weight.t() @ f  # one (B, F) x (F, N*H*W) product: fast, and linear in f
        return y.reshape(-1, n, h, w).permute(1, 0, 2, 3).to(x.dtype)

    @classmethod
    def fit(cls, rgb_pixels: np.ndarray, spectra: np.ndarray, ridge: float = 1e-9, **config) -> FeatureRegression:
        """Closed-form least-squares fit on ``(N, 3)`` RGB and ``(N, B)`` spectra."""
        model = cls(out_bands=spectra.shape[1], **config)
        w = least_squares(model.features_np(rgb_pixels), spectra, ridge)
        model.weight.copy_(torch.from_numpy(w).float())
        return model.eval()


class LinearRecon(FeatureRegression):
    """3 -> B linear map."""

    def __init__(self, out_bands: int = 31):
        super().__init__(out_bands, 3)


@register_model(
    "linear",
    kind="pixel",
    multiple=1,
    halo=0,
    description="Linear least-squares map RGB -> spectrum (pixel-wise, exposure invariant)",
    reference="NTIRE 2018 spectral reconstruction challenge report (baseline)",
)
def linear(out_bands: int = 31) -> LinearRecon:
    return LinearRecon(out_bands)
