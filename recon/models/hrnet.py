"""HRNet: 4-level hierarchical regression network (OrangeCat, NTIRE 2020 real-world winner).

Written from the challenge report (section 5.3), the paper, and the facts of the authors' code
(zhaoyuzhi/Hierarchical-Regression-Network-for-Spectral-Reconstruction-from-RGB-Images,
``network_code1.py`` and ``train.py`` defaults: 64 start channels, reflection padding, LeakyReLU
0.2 after every convolution, no normalisation). The input is pixel-unshuffled by 2, 4 and 8 to
feed four levels with 64·(1, 2, 4, 8) features; each level is a 3×3 entry convolution, (for all
but the top) a 3×3 convolution merging the pixel-shuffled output of the level below, residual
dense blocks (RDB: five densely connected 3×3 convolutions, residual scaled by 0.1), one residual
global block (RGB: two 3×3 convolutions around a squeeze-excitation MLP, residual scaled by 0.1)
and an exit convolution (1×1 at the top, "tone mapping"; 3×3 below); the top level has 1 RDB,
the middle 1, the third 2 and the full-resolution level 4. The last 3×3 convolution gives the
spectrum (with the LeakyReLU the authors keep on it).

Difference from the authors' code, on purpose: their global block computes the squeeze-excitation
weighting and then discards it (``y = conv2(x)``); here the second convolution is applied to the
re-weighted features as the paper's Figure 9 draws it. Parameters are identical.

Parameter count at 3 → 31 channels: ours 31,704,863 = 31.70 M; published 31.70 M (the MST++
toolbox's model-zoo table). 63 MB in fp16, so its bundled weights are stored as int8 weight
matrices with per-channel scales (``train --int8``, 32 MB). ``hrnet_s`` (8 start channels instead
of 64, 0.61 M) is our own smaller configuration, same structure, clearly named.

Tiling: ``multiple=8`` (pixel-unshuffle by 8). Convolutional receptive radius ≈ 160 px
(8 convolutions at 1/8 scale = 64 px, 9 at 1/4 = 36, 14 at 1/2 = 28, 24 at full resolution);
the squeeze-excitation pooling is global over what the model sees. At initialisation 99.9 % of
an output pixel's input-gradient mass lies within 23 px; ``halo=64`` covers the effective part
with room to spare. Tiled and whole-image outputs differ slightly through the global pooling.

Reference: Y. Zhao, L.-M. Po, Q. Yan, W. Liu, T. Lin, "Hierarchical Regression Network for
Spectral Reconstruction from RGB Images", CVPRW 2020.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hstool.recon.fuse import BAND_PIXELS, band_rows, in_row_bands
from hstool.recon.registry import register_model


class ConvAct(nn.Module):
    """Reflection pad, convolution (with bias), LeakyReLU(0.2)."""

    fusable_pairs = (("conv", "act"),)  # for hstool.recon.fuse

    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2) if k > 1 else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, k)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.pad(x)))


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convolutions; output = 0.1·x5 + x.

    The engine's model (:meth:`fuse_for_inference`) runs it on a CPU in bands of rows with five
    rows of context above and below, as far as its five convolutions reach (a band's reflected
    edge spoils one row per convolution, all within that context, which is cut away): its growing
    concatenations, the largest tensors of HRNet, never exist for the whole image at once."""

    #: pixels per band at inference on a CPU (0: the whole image at once, as the research code)
    band_pixels = 0

    def __init__(self, ch: int, latent: int):
        super().__init__()
        self.convs = nn.ModuleList(ConvAct(ch + i * latent, latent) for i in range(4))
        self.last = ConvAct(ch + 4 * latent, ch)

    def fuse_for_inference(self) -> int:
        self.band_pixels = BAND_PIXELS
        return 0

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(conv(torch.cat(feats, dim=1)))
        return 0.1 * self.last(torch.cat(feats, dim=1)) + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = band_rows(x, 2, self.band_pixels)
        if rows is None:
            return self._dense(x)
        return in_row_bands(self._dense, x, torch.empty_like(x), dim=2, rows=rows, halo=len(self.convs) + 1)


class ResidualGlobalBlock(nn.Module):
    """3×3 conv, squeeze-excitation (3-layer MLP, reduction 4), 3×3 conv; output = 0.1·y + x."""

    def __init__(self, ch: int, reduction: int = 4):
        super().__init__()
        self.conv1 = ConvAct(ch, ch)
        self.conv2 = ConvAct(ch, ch)
        r = max(ch // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(ch, r, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(r, r, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(r, ch, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        weights = self.fc(y.mean(dim=(2, 3)))[:, :, None, None]
        return 0.1 * self.conv2(y * weights) + x


class HRNet(nn.Module):
    """HRNet: (N, 3, H, W) RGB -> (N, out_bands, H, W); H, W multiples of 8."""

    def __init__(self, in_channels: int = 3, out_bands: int = 31, start: int = 64):
        super().__init__()
        s = self.start = start
        # top level (1/8 resolution)
        self.top = nn.Sequential(
            ConvAct(in_channels * 64, 8 * s),
            ResidualDenseBlock(8 * s, 4 * s),
            ResidualGlobalBlock(8 * s),
            ConvAct(8 * s, 8 * s, k=1),
        )
        # middle level (1/4)
        self.mid_in = ConvAct(in_channels * 16, 4 * s)
        self.mid = nn.Sequential(
            ConvAct(4 * s + 2 * s, 4 * s),
            ResidualDenseBlock(4 * s, 2 * s),
            ResidualGlobalBlock(4 * s),
            ConvAct(4 * s, 4 * s),
        )
        # bottom level (1/2)
        self.bot_in = ConvAct(in_channels * 4, 2 * s)
        self.bot = nn.Sequential(
            ConvAct(2 * s + s, 2 * s),
            ResidualDenseBlock(2 * s, s),
            ResidualDenseBlock(2 * s, s),
            ResidualGlobalBlock(2 * s),
            ConvAct(2 * s, 2 * s),
        )
        # full-resolution main stream
        self.main_in = ConvAct(in_channels, s)
        self.main = nn.Sequential(
            ConvAct(s + s // 2, s),
            *[ResidualDenseBlock(s, s // 2) for _ in range(4)],
            ResidualGlobalBlock(s),
            ConvAct(s, out_bands),
        )

    def concat_inputs(self) -> dict[str, list[int]]:
        """The convolutions whose input is a concatenation, with the width of each piece (for
        :func:`hstool.recon.grow.grow_state`): each level's entry merge and every dense block."""
        s = self.start
        pieces = {"mid.0.conv.weight": [4 * s, 2 * s], "bot.0.conv.weight": [2 * s, s],
                  "main.0.conv.weight": [s, s // 2]}
        for name, block in self.named_modules():
            if isinstance(block, ResidualDenseBlock):
                ch, latent = block.last.conv.out_channels, block.convs[0].conv.out_channels
                for i in range(len(block.convs)):
                    pieces[f"{name}.convs.{i}.conv.weight"] = [ch] + [latent] * i
                pieces[f"{name}.last.conv.weight"] = [ch] + [latent] * len(block.convs)
        return pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = F.pixel_shuffle(self.top(F.pixel_unshuffle(x, 8)), 2)
        mid = self.mid(torch.cat([self.mid_in(F.pixel_unshuffle(x, 4)), top], dim=1))
        bot = self.bot(torch.cat([self.bot_in(F.pixel_unshuffle(x, 2)), F.pixel_shuffle(mid, 2)], dim=1))
        return self.main(torch.cat([self.main_in(x), F.pixel_shuffle(bot, 2)], dim=1))


@register_model(
    "hrnet_s",
    kind="deep",
    multiple=8,
    halo=64,
    description="HRNet with 8 start channels instead of 64 (0.61 M) — the pick on CPU",
    reference="Zhao et al., HRNet, CVPRW 2020 (smaller configuration of ours)",
    start=8,
)
@register_model(
    "hrnet",
    kind="deep",
    multiple=8,
    halo=64,
    description="HRNet hierarchical regression network, NTIRE 2020 real-world winner (31.70 M); int8 weights grown from hrnet_s",
    reference="Zhao et al., Hierarchical Regression Network for Spectral Reconstruction from RGB Images, "
    "CVPRW 2020",
)
def hrnet(out_bands: int = 31, start: int = 64) -> HRNet:
    """HRNet at the authors' configuration (64 start channels)."""
    return HRNet(3, out_bands, start)
