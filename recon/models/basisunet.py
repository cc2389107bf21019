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
transposed 2×2 convolutions up, a 1×1 convolution to the 10 weights. Ours: 2,030,320 parameters
(2,028,848 without BatchNorm), most of them in the coarse levels, so it is cheap per pixel:
3.1 GMAC at 256×256 against MST++'s 23. The basis is initialised with the first 10 cosine
(DCT-II) functions over the band axis, a smooth start that training reshapes.

Two changes of ours, on by default and used by the bundled weights; ``space="linear",
norm="none"`` (``--config space=linear --config norm=none``) gives the paper's plain design:

- ``space="log"``: the weighted sum is a *log*-spectrum and the output its exponential, so every
  output is positive and a near-zero band (a green leaf at 400 nm, reflectance 3e-4) is as easy
  to reach as a bright one, which is what MRAE, a relative error, rewards. With the linear sum
  such bands need ten weights to cancel to 1e-4; early in real-world training the U-Net missed
  them by 100× on the 2 % of pixels that have one. The bias of the flat basis function starts the
  output at 0.1 everywhere.
- ``norm="batch"``: each 3×3 convolution is followed by BatchNorm (and has no bias). Without it
  most coarse-level units die: in a plain file trained for 4,000 steps, 71 % of the bottom
  level's channels never fired on a test scene, so most of the parameters did nothing.

On 32 held-out scenes (``benchmarks/heldout.py``, 4,000–6,000 CPU steps each) the plain
design scored 0.603 MRAE on the clean track, ``space="log"`` 0.538 and both changes 0.458; on
the real-world track ``space="log"`` alone 0.802 and both 0.448 (the plain design did not train
there: its three runs ended no better than predicting zeros).

A third change, off by default (the bundled real-world file predates it), used by the bundled
clean file: ``scale="pixel"`` (``--config scale=pixel``) divides each pixel's RGB by its intensity
``s`` (the mean of its channels, floored at 1e-4), gives the U-Net that chromaticity and
``log s`` (4 input channels), and multiplies the spectrum by ``s`` (adds ``log s`` to the
log-spectrum). Without it the network has to compute ``log s`` itself over three decades of
intensity with ReLUs, and MRAE charges a dark pixel's error as much as a bright one's; with it
the spectrum scales with exposure as a linear map's does (exactly, when the ``log s`` input is
unused). The clean file shipped before it lost to ``linear`` even on training-split scenes
(median MRAE over 8 scenes 0.49 against 0.44; held out 0.458 / 0.406 on the two 32-scene sets,
``linear`` 0.301 / 0.305). One 15-minute run with the scale (``--loss rel-l1 --mrae-mix 0.1``)
scored 0.318 / 0.251 and the same run with the linear sum 0.375 / 0.268. The shipped file (a
``--loss mrae`` run, then a ``rel-l1 --mrae-mix 0.1`` stage) scores 0.287 / 0.262
(docs/models.md, session 14).

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

#: ``scale="pixel"``: the floor of a pixel's intensity (mean of its RGB), below 8-bit's step 1/255
PIXEL_EPS = 1e-4


def _double_conv(cin: int, cout: int, norm: str = "none") -> nn.Sequential:
    """Two 3×3 convolutions + ReLU; ``norm="batch"``: conv (no bias) → BatchNorm → ReLU."""
    layers: list[nn.Module] = []
    for a, b in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(a, b, 3, 1, 1, bias=norm == "none"))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def cosine_basis(n_basis: int, bands: int) -> torch.Tensor:
    """``(n_basis, bands)`` DCT-II functions (unit norm); row 0 is flat."""
    k = torch.arange(n_basis, dtype=torch.float64)[:, None]
    n = torch.arange(bands, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * (n + 0.5) * k / bands)
    return (basis / basis.norm(dim=1, keepdim=True)).float()


class BasisUNet(nn.Module):
    """(N, 3, H, W) RGB -> U-Net weights (N, n_basis, H, W) -> spectra (N, out_bands, H, W)."""

    def __init__(
        self, in_channels: int = 3, out_bands: int = 31, n_basis: int = 10, width: int = 16, depth: int = 4,
        space: str = "log", norm: str = "batch", scale: str = "none",
    ):
        super().__init__()
        if scale not in ("none", "pixel"):
            raise ValueError(f"scale must be 'none' or 'pixel', not {scale!r}")
        self.pixel_scale = scale == "pixel"
        if space not in ("linear", "log"):
            raise ValueError(f"space must be 'linear' or 'log', not {space!r}")
        if norm not in ("none", "batch"):
            raise ValueError(f"norm must be 'none' or 'batch', not {norm!r}")
        self.log_space = space == "log"
        widths = [width * 2**k for k in range(depth + 1)]
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        cin = in_channels + self.pixel_scale  # chromaticity and log intensity
        for w in widths[:-1]:
            self.enc.append(_double_conv(cin, w, norm))
            self.down.append(nn.Conv2d(w, w, 2, 2))  # learned linear downsampling
            cin = w
        self.bottom = _double_conv(widths[-2], widths[-1], norm)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1]):
            self.up.append(nn.ConvTranspose2d(w_low, w, 2, 2))
            self.dec.append(_double_conv(2 * w, w, norm))
        self.to_weights = nn.Conv2d(widths[0], n_basis, 1)
        self.basis = nn.Parameter(cosine_basis(n_basis, out_bands))  # (n_basis, out_bands)
        if self.log_space and not self.pixel_scale:  # flat log-spectrum log(0.1): row 0 of the basis is 1/sqrt(bands)
            with torch.no_grad():
                self.to_weights.bias[0] = math.log(0.1) * math.sqrt(out_bands)

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
        if self.pixel_scale:
            s = x.mean(dim=1, keepdim=True).clamp(min=PIXEL_EPS)  # the pixel's intensity
            x = torch.cat([x / s, torch.log(s)], dim=1)
        y = torch.einsum("nkhw,kb->nbhw", self.weights(x), self.basis)
        if self.log_space:
            y = torch.exp(y)
        return y * s if self.pixel_scale else y


@register_model(
    "basisunet",
    kind="deep",
    multiple=16,
    halo=48,
    description="U-Net predicting weights of 10 learned spectral basis functions (StaffsCVL style, fast)",
    reference="Fubara, Sedky, Dyke, RGB to Spectral Reconstruction via Learned Basis Functions and "
    "Weights, CVPRW 2020",
)
def basisunet(out_bands: int = 31, n_basis: int = 10, width: int = 16, space: str = "log",
              norm: str = "batch", scale: str = "none") -> BasisUNet:
    """The StaffsCVL-style basis U-Net with 16 base features, summing log-spectra, with BatchNorm."""
    return BasisUNet(3, out_bands, n_basis, width, space=space, norm=norm, scale=scale)
