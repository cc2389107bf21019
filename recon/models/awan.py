"""AWAN: adaptive weighted attention network (IPIC SSR, NTIRE 2020 clean-track winner).

Written from the challenge report (section 5.1), the paper, and the facts of the reference code
(Deep-imagelab/AWAN, as the MST++ toolbox carries it in ``architecture/AWAN.py``): a 3×3
convolution + PReLU and a 3×3 head convolution, 8 dual residual attention blocks (DRAB), a 3×3
tail convolution with a long skip, PReLU, a 3×3 convolution to the spectrum, and a patch-level
second-order non-local block (PSNL) at the very end. All convolutions reflection-pad and have
no bias. A DRAB is a residual pair of 3×3 convolutions (PReLUs), then a 5×5 convolution whose
output is added to the running "res" stream of the previous block (the long dual skip), PReLU,
adaptive weighted channel attention (AWCA: a 1×1 convolution gives a softmax weight per pixel,
the weighted spatial pooling feeds a 2-layer MLP, reduction 16, PReLU, sigmoid), and a 3×3
convolution added back to the block input (the short skip), PReLU.

PSNL splits the map into four quadrants and runs a second-order non-local block in each: with
θ = 1×1(x) and g = 1×1(x) reduced 8×, affinity A_ij = (θ_i − mean_c θ_i)·θ_j / C', softmax over
j, y = A·g, and x + W(y) with W a zero-initialised 1×1 convolution. A is (HW/4)², quadratic in
the image: the reference materialises it (a 482×512 image needs > 24 GB). Here it is computed
exactly through ``scaled_dot_product_attention``, whose fused kernels (flash attention, on CPU
too) never hold A, with the C' = 3 attention channels zero-padded to 16 (no dot product changes;
the fused kernels need no fallback for odd widths, and on CPU 16 is the fastest width: a
quadrant of a 482×512 image takes 2.0 s instead of 3.8 s), and in query chunks of at most
``attention_budget`` affinity elements (default 2²⁸, 1 GB of fp32) so that even the plain
fallback stays bounded; memory is linear in the pixel count (``awan_s`` on a 482×512 image: 9 s,
< 100 MB on 2 CPU cores; 16.7 s before the padding). The engine tiles large images, so each
quadrant is also at most a quarter of a tile. ONNX export traces one unchunked call, which
onnxruntime runs as a plain M×M product: export tile-sized inputs. On CUDA in fp32, before the
padding, PyTorch took the plain path (measured on an H200: ``awan_s`` 211 ms per 482×512 image;
29 ms under fp16 or bf16 autocast); the padded width meets the memory-efficient kernel's
alignment rule for fp32, which has not been measured on a GPU yet.

For inference (``fuse_for_inference``, which the engine's model gets) the attention is computed
in linear time instead, by :func:`series_attention`: C' is 3 and the products are small (R, the
bound on |q_i·(θ_j − mean_j θ_j)| / C', is at most 0.15 on the sample scenes with the bundled
weights), so a Taylor series of exp cut at order 5–6 factors A's M² weights into M × 56–84
monomials, with a proven bound of 1e-8 × max|g| on the error; where the bound would need more
than 1,024 terms it computes exactly as above. ``awan_s`` on a 482×512 image on 2 CPU cores:
0.59 s instead of 9.0–9.3 s, output within 1.3e-6 of the exact one (``benchmarks/recon.py``).

Parameter count at 3 → 31 channels: ours 4,039,425 = 4.04 M; published 4.04 M (the MST++
toolbox's model-zoo table, which builds AWAN with 96 features). The NTIRE 2020 entry itself
used 200 features (17.46 M; ``build_model("awan", channels=200)``). ``awan_s`` keeps 8 DRABs
with 24 features (0.26 M): our own smaller configuration for CPU training.

Tiling: no downsampling (``multiple=1``). Convolutional receptive radius 44 px (2 + 8·(1+1+2+1)
+ 2); AWCA and PSNL are global over what the model sees (PSNL over a quadrant of it, so its
partition moves with the tile). At initialisation 99.9 % of an output pixel's input-gradient mass
lies within 13 px; ``halo=48`` covers the whole convolutional radius. Tiled and whole-image
results differ slightly.

Reference: J. Li, C. Wu, R. Song, Y. Li, F. Liu, "Adaptive Weighted Attention Network with Camera
Spectral Sensitivity Prior for Spectral Reconstruction from RGB Images", CVPRW 2020.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from hstool.recon.registry import register_model

#: The non-local block's attention channels are zero-padded to a multiple of this.
HEAD_MULTIPLE = 16

#: Inference-time series attention (:func:`series_attention`): its bound on each output's error,
#: relative to the largest value, and the most series terms it may use before handing back.
SERIES_TOLERANCE = 1e-8
SERIES_MAX_TERMS = 1024


@functools.cache
def _multi_indices(dims: int, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every exponent vector α ∈ ℕ^dims with |α| ≤ order, as a (terms, dims) tensor, and 1/α!."""
    rows = []
    for n in range(order + 1):
        for combo in itertools.combinations_with_replacement(range(dims), n):
            rows.append([combo.count(c) for c in range(dims)])
    alpha = torch.tensor(rows, dtype=torch.long).reshape(-1, dims)
    inv_factorial = torch.tensor([1.0 / math.prod(math.factorial(a) for a in row) for row in rows],
                                 dtype=torch.float64)
    return alpha, inv_factorial


def series_order(radius: float, dims: int, tolerance: float = SERIES_TOLERANCE,
                 max_terms: int = SERIES_MAX_TERMS) -> int | None:
    """The lowest Taylor order P whose bound 2·e^(2R)·R^(P+1)/(P+1)! on the attention's error
    (relative to max |v|) is within ``tolerance``, or None where that needs more than
    ``max_terms`` monomials (C(P+dims, dims)); R bounds |q_i·k_j| over all pairs."""
    for order in range(64):
        if math.comb(order + dims, dims) > max_terms:
            return None
        if radius == 0.0:
            return order
        log_bound = math.log(2.0) + 2.0 * radius + (order + 1) * math.log(radius) - math.lgamma(order + 2)
        if log_bound <= math.log(tolerance):
            return order
    return None


def _monomials(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """(N, M, d) -> (N, M, terms): x^α for every row of ``alpha``."""
    powers = x[..., None] ** torch.arange(int(alpha.max()) + 1, device=x.device, dtype=x.dtype)
    out = powers[:, :, 0, alpha[:, 0]]
    for c in range(1, x.shape[2]):
        out = out * powers[:, :, c, alpha[:, c]]
    return out


def series_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tolerance: float = SERIES_TOLERANCE,
                     max_terms: int = SERIES_MAX_TERMS, chunk: int = 8192) -> torch.Tensor | None:
    """softmax(q·kᵀ, over keys)·v in time and memory linear in the pixel count, or None.

    q, k: (N, M, d), v: (N, M, e). Keys are first centred on their mean, which multiplies each
    row of exp(q·kᵀ) by a constant that the softmax divides out, so that R = max|q_i|·max|k_j|
    bounds every |q_i·k_j|. The multinomial Taylor series exp(q·k) = Σ_α q^α k^α / α!, cut at
    the lowest order P whose remainder bound (:func:`series_order`) is within ``tolerance`` of
    max |v|, factors the M×M weights into (M × terms)·(terms × M): the keys' moments
    Σ_j k_j^α/α!·[v_j, 1] are summed once, and each query's numerator and denominator are one
    dot product with them. Computed in float64, returned in q's dtype. For small d and small R
    (AWAN's PSNL: d = 3, R ≤ 0.15 with the bundled weights, P 5–6, 56–84 terms) this is hundreds
    of times cheaper than the M² exponentials of exact attention; where R is so large that the bound
    needs more than ``max_terms`` terms it returns None and the caller computes exactly.
    """
    if q.shape[1] == 0 or k.shape[1] == 0:
        return None
    q64, k64 = q.double(), k.double()
    k64 = k64 - k64.mean(dim=1, keepdim=True)
    radius = float(q64.norm(dim=2).amax(dim=1).mul(k64.norm(dim=2).amax(dim=1)).max())
    order = series_order(radius, q.shape[2], tolerance, max_terms) if math.isfinite(radius) else None
    if order is None:
        return None
    alpha, inv_factorial = _multi_indices(q.shape[2], order)
    alpha, inv_factorial = alpha.to(q.device), inv_factorial.to(q.device)
    values = torch.cat([v.double(), v.new_ones(v.shape[:2] + (1,), dtype=torch.float64)], dim=2)
    moments = sum(  # (N, terms, e + 1): Σ_j k_j^α / α! · [v_j, 1]
        torch.bmm(_monomials(k64[:, i : i + chunk], alpha).mul_(inv_factorial).transpose(1, 2),
                  values[:, i : i + chunk])
        for i in range(0, k.shape[1], chunk)
    )
    out = torch.cat([torch.bmm(_monomials(q64[:, i : i + chunk], alpha), moments)
                     for i in range(0, q.shape[1], chunk)], dim=1)
    return (out[..., :-1] / out[..., -1:]).to(q.dtype)


class ConvPad(nn.Module):
    """Reflection-padded convolution without bias."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2) if k > 1 else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, k, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class AWCA(nn.Module):
    """Adaptive weighted channel attention: softmax-weighted spatial pooling -> MLP -> sigmoid."""

    def __init__(self, ch: int, reduction: int = 16):
        super().__init__()
        self.mask = nn.Conv2d(ch, 1, 1, bias=False)
        r = max(ch // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(ch, r, bias=False), nn.PReLU(), nn.Linear(r, ch, bias=False), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.mask(x).flatten(2).softmax(dim=-1)  # (N, 1, HW)
        pooled = (x.flatten(2) * weights).sum(dim=-1)  # (N, C)
        return x * self.fc(pooled)[:, :, None, None]


class SecondOrderNonLocal(nn.Module):
    """Second-order non-local block, computed in query chunks (exact, linear memory)."""

    def __init__(self, ch: int, reduction: int = 8, attention_budget: int = 1 << 28):
        super().__init__()
        self.inter = max(ch // reduction, 1)
        self.g = nn.Conv2d(ch, self.inter, 1, bias=False)
        self.W = nn.Conv2d(self.inter, ch, 1, bias=False)  # zero-initialised: the block starts as identity
        nn.init.zeros_(self.W.weight)
        self.theta = nn.Conv2d(ch, self.inter, 1, bias=False)
        self.attention_budget = attention_budget
        self.series_tolerance: float | None = None  # set by fuse_for_inference

    def fuse_for_inference(self) -> int:
        """Inference only: compute the attention by :func:`series_attention` (linear time, error
        within :data:`SERIES_TOLERANCE` of max |g|), exactly wherever the series would be long;
        :mod:`hstool.recon.fuse` calls it."""
        self.series_tolerance = SERIES_TOLERANCE
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (N, M, C')
        g = self.g(x).flatten(2).transpose(1, 2)
        q = theta - theta.mean(dim=2, keepdim=True)  # second order: centred over channels
        scale = 1.0 / self.inter
        y = None
        if self.series_tolerance is not None and not torch.jit.is_tracing():
            # keys q_j instead of θ_j: the same products, as each q_i sums to zero over channels,
            # and a tighter bound R for the series
            y = series_attention(q * scale, q, g, self.series_tolerance)
        if y is None:
            y = self._exact_attention(q, theta, g, scale)
        return x + self.W(y.transpose(1, 2).unflatten(2, x.shape[2:]))

    def _exact_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """softmax(q·kᵀ·scale)·v for (N, M, C') tensors, through SDPA in query chunks."""
        # (N, 1, M, C'): a single "head", so SDPA can take its fused kernels (flash attention on
        # CPU and CUDA), which never hold the M×M affinity. Zero channels up to a multiple of 16
        # change no dot product and add output channels that are cut below; the fused kernels need
        # a contiguous last dimension, CUDA's memory-efficient one a multiple of 4 (fp32) or 8, and
        # on CPU 16 is fastest (3 → 16: 3.8 → 2.0 s a quadrant)
        pad = -self.inter % HEAD_MULTIPLE
        q, k, v = (F.pad(t[:, None], (0, pad)).contiguous() for t in (q, k, v))
        m = k.shape[2]
        # query chunks bound the memory even where SDPA falls back to its plain math path
        chunk = max(1, self.attention_budget // max(m, 1))
        if torch.jit.is_tracing() or chunk >= m:
            y = F.scaled_dot_product_attention(q, k, v, scale=scale)
        else:
            y = torch.cat(
                [
                    F.scaled_dot_product_attention(q[:, :, i : i + chunk], k, v, scale=scale)
                    for i in range(0, m, chunk)
                ],
                dim=2,
            )
        return y[:, 0, :, : self.inter]


class PSNL(nn.Module):
    """Patch-level second-order non-local: the non-local block run on each image quadrant."""

    def __init__(self, ch: int):
        super().__init__()
        self.non_local = SecondOrderNonLocal(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1, w1 = x.shape[2] // 2, x.shape[3] // 2
        top = torch.cat([self.non_local(x[:, :, :h1, :w1]), self.non_local(x[:, :, :h1, w1:])], dim=3)
        bottom = torch.cat([self.non_local(x[:, :, h1:, :w1]), self.non_local(x[:, :, h1:, w1:])], dim=3)
        return torch.cat([top, bottom], dim=2)


class DRAB(nn.Module):
    """Dual residual attention block; returns (output, res stream)."""

    fusable_pairs = (("conv1.conv", "act1"),)  # for hstool.recon.fuse (the others add a skip first)

    def __init__(self, ch: int):
        super().__init__()
        self.conv1, self.act1 = ConvPad(ch, ch, 3), nn.PReLU()
        self.conv2, self.act2 = ConvPad(ch, ch, 3), nn.PReLU()
        self.up_conv, self.up_act = ConvPad(ch, ch, 5), nn.PReLU()
        self.attention = AWCA(ch)
        self.down_conv, self.down_act = ConvPad(ch, ch, 3), nn.PReLU()

    def forward(self, x: torch.Tensor, res: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = x
        x = self.act2(self.conv2(self.act1(self.conv1(x))) + skip)
        res = self.up_act(self.up_conv(x) + res)
        x = self.down_act(self.down_conv(self.attention(res)) + skip)
        return x, res


class AWAN(nn.Module):
    """AWAN: (N, 3, H, W) RGB -> (N, out_bands, H, W)."""

    fusable_pairs = (("input_conv.conv", "input_act"),)  # for hstool.recon.fuse
    #: what an exported graph's user must know (hstool.recon.export writes it into the file)
    onnx_note = ("the tail's non-local attention runs as one (HW/4)x(HW/4) product per image quadrant: memory grows "
                 "with the square of the pixel count (a 256x320 image needs ~3.7 GB in onnxruntime, 482x512 over 8 GB); "
                 "run tiles of at most 256x256 and blend them, as hstool recon does")

    def __init__(self, in_channels: int = 3, out_bands: int = 31, channels: int = 96, blocks: int = 8):
        super().__init__()
        self.input_conv, self.input_act = ConvPad(in_channels, channels, 3), nn.PReLU()
        self.head_conv = ConvPad(channels, channels, 3)
        self.backbone = nn.ModuleList(DRAB(channels) for _ in range(blocks))
        self.tail_conv = ConvPad(channels, channels, 3)
        self.output_act = nn.PReLU()
        self.output_conv = ConvPad(channels, out_bands, 3)
        self.tail_nonlocal = PSNL(out_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head_conv(self.input_act(self.input_conv(x)))
        skip = res = out
        for block in self.backbone:
            out, res = block(out, res)
        out = self.output_conv(self.output_act(self.tail_conv(out) + skip))
        return self.tail_nonlocal(out)


@register_model(
    "awan_s",
    kind="deep",
    multiple=1,
    halo=48,
    description="AWAN with 24 features instead of 96 (0.26 M) — the pick on CPU",
    reference="Li et al., AWAN, CVPRW 2020 (smaller configuration of ours)",
    channels=24,
)
@register_model(
    "awan",
    kind="deep",
    multiple=1,
    halo=48,
    description="AWAN adaptive weighted attention network, NTIRE 2020 clean-track winner (4.04 M); weights grown from awan_s",
    reference="Li et al., Adaptive Weighted Attention Network with Camera Spectral Sensitivity Prior "
    "for Spectral Reconstruction from RGB Images, CVPRW 2020",
)
def awan(out_bands: int = 31, channels: int = 96, blocks: int = 8) -> AWAN:
    """AWAN with 8 DRABs of 96 features (the MST++ toolbox configuration)."""
    return AWAN(3, out_bands, channels, blocks)
