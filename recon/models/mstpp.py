"""MST++: multi-stage spectral-wise transformer (Cai et al., NTIRE 2022 winner).

Written from the paper's description and the facts of its reference code
(caiyuanhao1998/MST-plus-plus, ``MST_Plus_Plus.py``): a 3×3 input convolution to 31 features,
three single-stage spectral transformers (MST) in series, a 3×3 output convolution and a global
residual. Each MST is a two-level U-shaped encoder/decoder (31 → 62 → 124 features, 4×4 stride-2
convolutions down, 2×2 transposed convolutions up, 1×1 fusion of the skip) whose stages are
spectral-wise multi-head self-attention blocks (S-MSA): tokens are *channels*, one head per 31
channels, queries and keys L2-normalised over the pixels, a learned per-head temperature, plus a
depth-wise convolutional position embedding on the values; each attention is followed by a
layer-normalised feed-forward (1×1 expand ×4, GELU, depth-wise 3×3, GELU, 1×1).

Because attention is over channels its cost is linear in the number of pixels (the attention
matrix is 31×31 per head), which is why MST++ is cheap: 23 GFLOPs at 256×256 (toolbox README).

Parameter count at 3 → 31 channels: ours 1,619,625 = 1.62 M; published 1.62 M (the MST++
toolbox's model-zoo table, caiyuanhao1998/MST-plus-plus README). ``mstpp_s`` (one stage instead
of three, 0.55 M) is our own smaller configuration for CPU training, not a published one.

Tiling: the input needs H and W multiples of 4 (two stride-2 levels; the reference pads to 8,
more than it needs). Each S-MSA pools over every pixel of what it sees (the 31×31 channel Gram
matrix), so the model is global in principle; its convolutional receptive radius is about 120 px
(three U-Nets of ≈40 px each), but at initialisation 99.9 % of an output pixel's input-gradient
mass lies within 14 px; ``halo=32`` leaves room for the wider field a trained model develops.
Tiled and whole-image results differ slightly through the global Gram statistics, as they do for
any tiled run of the reference code.

Reference: Y. Cai et al., "MST++: Multi-stage Spectral-wise Transformer for Efficient Spectral
Reconstruction", CVPRW 2022.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hstool.recon.fuse import BAND_PIXELS, band_rows, in_row_bands
from hstool.recon.registry import register_model


class SpectralMSA(nn.Module):
    """Spectral-wise multi-head self-attention (S-MSA) on ``(N, H, W, C)`` tokens-last features."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.rescale = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj = nn.Linear(inner, dim, bias=True)
        self.pos_emb = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim),
        )
        self.register_buffer("qk", None, persistent=False)  # set by fuse_for_inference

    def fuse_for_inference(self) -> int:
        """Inference only: the exact algebra of :meth:`forward` in fewer passes over the pixels
        (float32 rounding apart; :mod:`hstool.recon.fuse` calls it). The query and key projections
        become one product whose (2·inner)² Gram matrix over the pixels gives both the norms that
        ``F.normalize`` would divide by and the key–query products, so q and k are never normalised
        pixel by pixel; the attention and the output projection then act on the values as one
        (inner × dim) matrix per image."""
        d, heads = self.dim_head, self.heads
        wq = self.to_q.weight.detach().unflatten(0, (heads, d))
        wk = self.to_k.weight.detach().unflatten(0, (heads, d))
        self.qk = torch.cat([wq, wk], dim=1).flatten(0, 1)  # rows q, k of head 0, then of head 1, ...
        return 1

    def _attention_fused(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, heads = self.dim_head, self.heads
        qk = F.linear(tokens, self.qk).float()  # (N, HW, heads·2d)
        with torch.autocast(qk.device.type, enabled=False):  # sums over every pixel: fp16 would overflow
            gram = torch.bmm(qk.transpose(1, 2), qk)
        gram = gram.unflatten(1, (heads, 2 * d)).unflatten(3, (heads, 2 * d))
        gram = gram.diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)  # (N, heads, 2d, 2d): each head's own
        norm = gram.diagonal(dim1=-2, dim2=-1).sqrt().clamp_min(1e-12)  # F.normalize's norm and eps
        attn = gram[..., d:, :d] / (norm[..., d:, None] * norm[..., None, :d]) * self.rescale
        attn = attn.softmax(dim=-1)  # (N, heads, d, d) as in forward
        # proj(out)[p, e] = sum_(h,j) v[p, h·d + j] · sum_i attn[h, i, j] · W_proj[e, h·d + i]
        mix = torch.einsum("nhij,ehi->nhje", attn, self.proj.weight.unflatten(1, (heads, d))).flatten(1, 2)
        v_inp = self.to_v(tokens)
        return torch.baddbmm(self.proj.bias, v_inp, mix), v_inp

    def _attention(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference computation: (proj(attention), values), both (N, HW, ·)."""
        v_inp = self.to_v(tokens)

        def heads_first(t: torch.Tensor) -> torch.Tensor:  # (N, HW, heads*d) -> (N, heads, d, HW)
            return t.unflatten(-1, (self.heads, self.dim_head)).permute(0, 2, 3, 1)

        q = F.normalize(heads_first(self.to_q(tokens)), dim=-1, p=2)
        k = F.normalize(heads_first(self.to_k(tokens)), dim=-1, p=2)
        attn = (k @ q.transpose(-2, -1)) * self.rescale  # (N, heads, d, d): channel-to-channel
        out = attn.softmax(dim=-1) @ heads_first(v_inp)  # (N, heads, d, HW)
        return self.proj(out.permute(0, 3, 1, 2).flatten(2)), v_inp  # (N, HW, heads*d) projected

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:3]
        tokens = x.flatten(1, 2)  # (N, HW, C)
        out_c, v_inp = self._attention_fused(tokens) if self.qk is not None else self._attention(tokens)
        out_p = self.pos_emb(v_inp.unflatten(1, (h, w)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return out_c.unflatten(1, (h, w)) + out_p


class FeedForward(nn.Module):
    """Pre-normalised conv feed-forward on ``(N, H, W, C)`` features (expansion 4).

    The engine's model (:meth:`fuse_for_inference`) runs it on a CPU in bands of rows, each with
    the one row above and below that the 3x3 convolution reads: its two 4×-wide hidden maps, the
    largest tensors of MST++ (117 MB each on a 482×512 image at ``dim`` 31), then never exist
    for the whole image at once. Every other step is per pixel, so the output is the same."""

    #: pixels per band at inference on a CPU (0: the whole image at once, as the research code)
    band_pixels = 0

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        hidden = dim * mult
        self.net = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False, groups=hidden),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 1, bias=False),
        )
        self.norm = nn.LayerNorm(dim)

    def fuse_for_inference(self) -> int:
        self.band_pixels = BAND_PIXELS
        return 0

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = band_rows(x, 1, self.band_pixels)
        if rows is None:
            return self._ffn(x)
        return in_row_bands(self._ffn, x, torch.empty_like(x), dim=1, rows=rows)


class SpectralAttentionBlock(nn.Module):
    """MSAB: ``blocks`` × (S-MSA + residual, feed-forward + residual) on ``(N, C, H, W)``."""

    def __init__(self, dim: int, dim_head: int, heads: int, blocks: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([SpectralMSA(dim, dim_head, heads), FeedForward(dim)]) for _ in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x.permute(0, 3, 1, 2)


class SingleStageTransformer(nn.Module):
    """One MST stage: a U-shaped S-MSA encoder/decoder with ``levels`` stride-2 levels."""

    def __init__(self, dim: int = 31, levels: int = 2, blocks: tuple[int, ...] = (1, 1, 1)):
        super().__init__()
        self.embedding = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.encoder = nn.ModuleList()
        d = dim
        for i in range(levels):
            self.encoder.append(
                nn.ModuleList(
                    [
                        SpectralAttentionBlock(d, dim, d // dim, blocks[i]),
                        nn.Conv2d(d, 2 * d, 4, 2, 1, bias=False),
                    ]
                )
            )
            d *= 2
        self.bottleneck = SpectralAttentionBlock(d, dim, d // dim, blocks[-1])
        self.decoder = nn.ModuleList()
        for i in range(levels):
            self.decoder.append(
                nn.ModuleList(
                    [
                        nn.ConvTranspose2d(d, d // 2, kernel_size=2, stride=2),
                        nn.Conv2d(d, d // 2, 1, bias=False),
                        SpectralAttentionBlock(d // 2, dim, d // 2 // dim, blocks[levels - 1 - i]),
                    ]
                )
            )
            d //= 2
        self.mapping = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.embedding(x)
        skips = []
        for block, down in self.encoder:
            fea = block(fea)
            skips.append(fea)
            fea = down(fea)
        fea = self.bottleneck(fea)
        for (up, fuse, block), skip in zip(self.decoder, reversed(skips)):
            fea = block(fuse(torch.cat([up(fea), skip], dim=1)))
        return self.mapping(fea) + x


class MSTPlusPlus(nn.Module):
    """MST++: (N, 3, H, W) RGB in [0, 1] -> (N, out_bands, H, W); H, W multiples of 4."""

    #: :func:`hstool.recon.grow.grow_state`: a stage added to a trained network starts as the identity
    zero_when_new = ("body.*.mapping.weight",)

    def __init__(self, in_channels: int = 3, out_bands: int = 31, n_feat: int = 31, stages: int = 3):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, n_feat, 3, 1, 1, bias=False)
        self.body = nn.Sequential(*[SingleStageTransformer(n_feat, 2, (1, 1, 1)) for _ in range(stages)])
        self.conv_out = nn.Conv2d(n_feat, out_bands, 3, 1, 1, bias=False)
        self.residual = out_bands == n_feat  # the paper's global residual needs equal widths
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_in(x)
        out = self.conv_out(self.body(fea))
        return out + fea if self.residual else out


def _init_weights(m: nn.Module) -> None:
    """The reference initialisation: truncated normal (std 0.02) linears, zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


@register_model(
    "mstpp_s",
    kind="deep",
    multiple=4,
    halo=32,
    description="MST++ with one transformer stage instead of three (0.55 M) — the pick on CPU",
    reference="Cai et al., MST++, CVPRW 2022 (smaller configuration of ours)",
    stages=1,
)
@register_model(
    "mstpp",
    kind="deep",
    multiple=4,
    halo=32,
    description="MST++ spectral-wise transformer, NTIRE 2022 winner (1.62 M); weights grown from mstpp_s",
    reference="Cai et al., MST++: Multi-stage Spectral-wise Transformer, CVPRW 2022",
)
def mstpp(out_bands: int = 31, stages: int = 3) -> MSTPlusPlus:
    """MST++ at its published configuration (31 features, 3 stages, one block per level)."""
    return MSTPlusPlus(3, out_bands, 31, stages)
