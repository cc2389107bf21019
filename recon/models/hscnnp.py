"""HSCNN+ (Shi et al., NTIRE 2018 winner): dense and residual CNNs for spectral recovery.

``hscnnp`` is HSCNN-D, the densely connected variant that won the 2018 clean track, as the MST++
toolbox implements it (caiyuanhao1998/MST-plus-plus, ``architecture/HSCNN_Plus.py``), which is
the configuration its published count refers to. Feature extraction: two parallel paths of a
3×3 then a 1×1 convolution (32 filters each) whose four outputs are concatenated (128 features);
then 30 dense fusion blocks, each a 1×1 bottleneck to 128, two parallel 3×3 (32) → 1×1 (16)
paths, a 1×1 fusion of their four outputs to 32 features, appended to its input (dense growth
of 32 per block, 128 + 32·30 = 1088 features at the end); a 1×1 convolution reconstructs the
spectrum. ReLU after every convolution but the last; no biases.

Parameter count at 3 → 31 channels: ours 4,645,504 = 4.65 M; published 4.65 M (MST++ toolbox
model-zoo table). ``hscnnp_s`` keeps the structure with 3 fusion blocks (0.31 M): our own
smaller configuration for CPU training.

``hscnnp_r`` is HSCNN-R, the residual variant of the same paper (3×3 convolutions of 64 filters,
16 residual blocks of conv–ReLU–conv with identity skips, a global skip over the blocks and a
3×3 reconstruction layer; 1.20 M with biases). The paper reports no parameter count for it.

Tiling: no downsampling (``multiple=1``). Each fusion block adds one 3×3 convolution to the
path, so the receptive radius is 31 px for ``hscnnp`` (1 + 30), 4 px for ``hscnnp_s`` and 34 px
for ``hscnnp_r`` (1 + 2·16 + 1); ``halo`` is set to those, rounded up. The model is purely
convolutional, so tiled output equals whole-image output away from the image border.

Reference: Z. Shi, C. Chen, Z. Xiong, D. Liu, F. Wu, "HSCNN+: Advanced CNN-Based Hyperspectral
Recovery from RGB Images", CVPRW 2018.
"""

from __future__ import annotations

import torch
from torch import nn

from hstool.recon.fuse import BAND_PIXELS, band_rows, in_row_bands
from hstool.recon.registry import register_model


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, 1, k // 2, bias=False)


class TwoPath(nn.Module):
    """Parallel (k×k → 1×1) paths; returns the concatenation of all four intermediate maps."""

    def __init__(self, cin: int, mid: int, out: int):
        super().__init__()
        self.up1, self.up2 = _conv(cin, mid, 3), _conv(mid, out, 1)
        self.down1, self.down2 = _conv(cin, mid, 3), _conv(mid, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u1 = torch.relu(self.up1(x))
        d1 = torch.relu(self.down1(x))
        return torch.cat([u1, torch.relu(self.up2(u1)), d1, torch.relu(self.down2(d1))], dim=1)


class DenseFusionBlock(nn.Module):
    """1×1 bottleneck to 128, two-path 3×3/1×1 features, 1×1 fusion to ``growth``, appended."""

    def __init__(self, cin: int, growth: int = 32):
        super().__init__()
        self.bottleneck = _conv(cin, 128, 1)
        self.paths = TwoPath(128, 32, 16)
        self.fusion = _conv(96, growth, 1)

    def grow(self, x: torch.Tensor) -> torch.Tensor:
        """The ``growth`` new channels this block appends to ``x``."""
        return torch.relu(self.fusion(self.paths(torch.relu(self.bottleneck(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.grow(x)], dim=1)


class HSCNND(nn.Module):
    """HSCNN-D: (N, 3, H, W) RGB -> (N, out_bands, H, W)."""

    def __init__(self, in_channels: int = 3, out_bands: int = 31, blocks: int = 30):
        super().__init__()
        self.head = TwoPath(in_channels, 32, 32)
        self.blocks = nn.Sequential(*[DenseFusionBlock(128 + 32 * i) for i in range(blocks)])
        self.conv_out = _conv(128 + 32 * blocks, out_bands, 1)
        self.preallocated = False  # set by fuse_for_inference
        self.band_pixels = 0  # pixels per band of rows (fuse_for_inference); 0: the whole image

    def fuse_for_inference(self) -> int:
        """Inference only (:mod:`hstool.recon.fuse` calls it): the dense blocks write their new
        channels into one preallocated buffer instead of each concatenating a growing copy, the
        same arithmetic (``hscnnp`` on a 482×512 image through the CPU engine: 10.1 → 8.0 s, peak
        memory 5.6 → 3.2 GB; ``benchmarks/recon.py``). Training keeps ``torch.cat``: autograd
        forbids writing into a buffer whose slices earlier layers saved. On a CPU each block's new
        channels are computed in bands of rows (:func:`~hstool.recon.fuse.in_row_bands`), so that
        its 128- and 96-channel intermediate maps never exist for the whole image."""
        self.preallocated, self.band_pixels = True, BAND_PIXELS
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        if not self.preallocated:
            return self.conv_out(self.blocks(feat))
        n, c, h, w = feat.shape
        growth = [block.fusion.out_channels for block in self.blocks]
        layout = torch.channels_last if feat.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        buf = torch.empty((n, c + sum(growth), h, w), dtype=feat.dtype, device=feat.device, memory_format=layout)
        buf[:, :c] = feat
        rows = band_rows(buf, 2, self.band_pixels)
        for block, g in zip(self.blocks, growth, strict=True):
            if rows is not None:  # its 3x3 convolutions reach one row: bands of rows, the same values
                # (to float rounding: oneDNN may sum a band's 1x1 convolutions in another order)
                in_row_bands(block.grow, buf[:, :c], buf[:, c : c + g], dim=2, rows=rows)
            else:
                buf[:, c : c + g] = block.grow(buf[:, :c])
            c += g
        return self.conv_out(buf)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class HSCNNR(nn.Module):
    """HSCNN-R: (N, 3, H, W) RGB -> (N, out_bands, H, W)."""

    def __init__(self, in_channels: int = 3, out_bands: int = 31, width: int = 64, blocks: int = 16):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, width, 3, 1, 1)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.conv_out = nn.Conv2d(width, out_bands, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = torch.relu(self.conv_in(x))
        return self.conv_out(self.blocks(fea) + fea)


@register_model(
    "hscnnp_s",
    kind="deep",
    multiple=1,
    halo=8,
    description="HSCNN+ (HSCNN-D) with 3 dense fusion blocks (0.31 M) — the pick on CPU",
    reference="Shi et al., HSCNN+, CVPRW 2018 (smaller configuration of ours)",
    blocks=3,
)
@register_model(
    "hscnnp",
    kind="deep",
    multiple=1,
    halo=32,
    description="HSCNN+ dense network (HSCNN-D), NTIRE 2018 winner (4.65 M); weights grown from hscnnp_s",
    reference="Shi et al., HSCNN+: Advanced CNN-Based Hyperspectral Recovery from RGB Images, CVPRW 2018",
)
def hscnnp(out_bands: int = 31, blocks: int = 30) -> HSCNND:
    """HSCNN-D with 30 dense fusion blocks, as the MST++ toolbox builds it."""
    return HSCNND(3, out_bands, blocks)


@register_model(
    "hscnnp_r",
    kind="deep",
    multiple=1,
    halo=36,
    description="HSCNN+ residual network (HSCNN-R), 16 blocks of 64 filters (1.20 M)",
    reference="Shi et al., HSCNN+: Advanced CNN-Based Hyperspectral Recovery from RGB Images, CVPRW 2018",
)
def hscnnp_r(out_bands: int = 31, width: int = 64, blocks: int = 16) -> HSCNNR:
    """HSCNN-R: the residual variant of HSCNN+."""
    return HSCNNR(3, out_bands, width, blocks)
