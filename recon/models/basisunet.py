"""Basis-function U-Net in the style of StaffsCVL (NTIRE 2020), the fast entry.

From the challenge report (section 5.10) and Fubara, Sedky & Dyke, "RGB to Spectral
Reconstruction via Learned Basis Functions and Weights" (CVPRW 2020): a U-Net predicts, for
every pixel, the weights of 10 spectral basis functions that are learned at the same time as a
plain 10×31 matrix (no layer produces them); the spectrum is the weighted sum. As in their
modified U-Net, 2×2 pooling is replaced by a learned *linear* downsampling (here a 2×2 stride-2
convolution with no activation), there are four contracting steps, and the expanding path
concatenates skips directly (no cropping: "same" padding throughout).

The report gives no widths and no parameter count; this configuration is ours and chosen to be
small and fast: two 3×3 convolutions + ReLU per level with 16·2^k features (16 … 256),
transposed 2×2 convolutions up, a 1×1 convolution to the 10 weights. Ours: 2,028,848 parameters,
most of them in the coarse levels, so it is cheap per pixel: 3.1 GMAC at 256×256 against
MST++'s 23. The basis is initialised with the first 10 cosine (DCT-II) functions over the band
axis, a smooth start that training reshapes.

Tiling: ``multiple=16`` (four stride-2 steps). Receptive radius ≈ 92 px (2 + 4 + 8 + 16
px of 3×3 convolutions per level on each side of the U, 32 at the bottom, plus the strided
layers); at initialisation 99.9 % of an output pixel's input-gradient mass lies within 10 px, and
``halo=48`` covers the effective part of a trained model's field. Purely convolutional: tiles
differ from the whole image only through context beyond the halo.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hstool.recon.registry import register_model


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1),
        nn.ReLU(inplace=True),
    )


def cosine_basis(n_basis: int, bands: int) -> torch.Tensor:
    """``(n_basis, bands)`` DCT-II functions (unit norm); row 0 is flat."""
    k = torch.arange(n_basis, dtype=torch.float64)[:, None]
    n = torch.arange(bands, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * (n + 0.5) * k / bands)
    return (basis / basis.norm(dim=1, keepdim=True)).float()


class BasisUNet(nn.Module):
    """(N, 3, H, W) RGB -> U-Net weights (N, n_basis, H, W) -> spectra (N, out_bands, H, W)."""

    def __init__(
        self, in_channels: int = 3, out_bands: int = 31, n_basis: int = 10, width: int = 16, depth: int = 4
    ):
        super().__init__()
        widths = [width * 2**k for k in range(depth + 1)]
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.enc.append(_double_conv(cin, w))
            self.down.append(nn.Conv2d(w, w, 2, 2))  # learned linear downsampling
            cin = w
        self.bottom = _double_conv(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1]):
            self.up.append(nn.ConvTranspose2d(w_low, w, 2, 2))
            self.dec.append(_double_conv(2 * w, w))
        self.to_weights = nn.Conv2d(widths[0], n_basis, 1)
        self.basis = nn.Parameter(cosine_basis(n_basis, out_bands))  # (n_basis, out_bands)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel basis weights ``(N, n_basis, H, W)``."""
        skips = []
        for enc, down in zip(self.enc, self.down):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.to_weights(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nkhw,kb->nbhw", self.weights(x), self.basis)


@register_model(
    "basisunet",
    kind="deep",
    multiple=16,
    halo=48,
    description="U-Net predicting weights of 10 learned spectral basis functions (StaffsCVL style, fast)",
    reference="Fubara, Sedky, Dyke, RGB to Spectral Reconstruction via Learned Basis Functions and "
    "Weights, CVPRW 2020",
)
def basisunet(out_bands: int = 31, n_basis: int = 10, width: int = 16) -> BasisUNet:
    """The StaffsCVL-style basis U-Net with 16 base features."""
    return BasisUNet(3, out_bands, n_basis, width)
