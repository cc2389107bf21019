"""Inference-time fusion: fewer passes over the activations, the same arithmetic.

:func:`fuse_for_inference` rewrites a model in place for inference, the way deployment
runtimes (ONNX Runtime, OpenVINO) prepare a graph and the research repositories' test scripts do
not:

- **BatchNorm folding**: a ``Conv2d`` followed by an eval-mode ``BatchNorm2d`` becomes one
  convolution with ``w' = w·γ/σ`` and ``b' = (b − μ)·γ/σ + β`` (σ = √(var + eps));
- **activation fusion**: a ``Conv2d`` followed by ``ReLU``, ``GELU`` (exact or tanh),
  ``LeakyReLU``, a single-slope ``PReLU``, ``SiLU``, ``Sigmoid``, ``Tanh`` or ``Hardtanh`` becomes
  one oneDNN convolution with the activation as a post-op
  (``torch.ops.mkldnn._convolution_pointwise``, the kernel PyTorch's own compiler emits for this
  pattern), so the activation is applied while the output tile is still in cache instead of in a
  second pass over a (C, H, W) tensor (``hrnet_s``: 10 % of its CPU time; within ±3 % for MST++
  and ``basisunet`` once the engine reuses freed memory);
- a module may add its own rewrites through a ``fuse_for_inference()`` method (MST++
  computes its attention from one Gram product: 14 % of ``mstpp_s``'s CPU time; HSCNN-D's dense
  blocks write into one preallocated buffer instead of concatenating growing copies; AWAN's
  non-local attention becomes a truncated series with an error bound of 1e-8 of its values in
  linear instead of quadratic time: ``awan_s`` 9.0 → 0.59 s per 482×512 image on 2 CPU cores).
  Each must hold under autocast too (MST++ sums its Gram matrix in fp32 there).

Pairs are taken only where adjacency is certain: consecutive children of an ``nn.Sequential``,
or pairs a module names in ``fusable_pairs`` (submodule names, dotted where nested, of a
convolution and of the activation that alone consumes its output). The activation becomes
``nn.Identity``. In fp32, results equal the unfused model to float32 rounding (the tests check
1e-5 relative); under bf16/fp16 autocast they are as close to fp32 as the unfused model's.
Weights are frozen: PReLU's slope and BatchNorm's statistics are read once, so a fused model is
for inference only (the :class:`~hstool.recon.engine.Reconstructor` owns its model;
:func:`~hstool.recon.engine.predict` never fuses a caller's model). Off the CPU, in autocast,
with gradients, or where the oneDNN op is missing, a fused convolution runs ``F.conv2d`` and the
activation separately.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

#: pixels per band of rows where an engine model runs a block band by band (:func:`in_row_bands`)
BAND_PIXELS = 1 << 16


def band_rows(x: torch.Tensor, dim: int, band_pixels: int) -> int | None:
    """Rows per band for an inference-time block on ``x`` whose rows run along ``dim`` (and its
    width along ``dim + 1``), bands of ``band_pixels`` pixels; None where it runs whole: no bands
    asked (0), one band would hold every row, or not on a CPU (a GPU has the memory, and wants whole
    launches), with autograd, or traced (an ONNX export keeps its sizes free)."""
    h, w = x.shape[dim], x.shape[dim + 1]
    rows = max(1, band_pixels // w) if band_pixels else h
    bandable = x.device.type == "cpu" and not torch.is_grad_enabled() and not torch.jit.is_tracing()
    return rows if rows < h and bandable else None


def in_row_bands(fn, x: torch.Tensor, out: torch.Tensor, dim: int, rows: int, halo: int = 1) -> torch.Tensor:
    """``out`` = ``fn(x)``, computed in bands of ``rows`` rows along ``dim``, each with ``halo`` rows
    of context above and below (a 3×3 convolution's reach: 1), which are cut away again: a block whose
    only spatial step is such a convolution gives the same values, while its intermediate maps exist
    for one band at a time, not for the whole image. ``out`` may be a view (a slice of a buffer)."""
    h = x.shape[dim]
    for top in range(0, h, rows):
        end = min(h, top + rows)
        above, below = max(0, top - halo), min(h, end + halo)
        out.narrow(dim, top, end - top).copy_(fn(x.narrow(dim, above, below - above)).narrow(dim, top - above, end - top))
    return out


def onednn_fusion_available() -> bool:
    """Whether this torch build has oneDNN's convolution with post-ops (else nothing is fused
    with an activation; BatchNorm still folds)."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))
    except (AttributeError, RuntimeError):
        return False


def _activation(act: nn.Module) -> tuple[str, list[float], str] | None:
    """oneDNN post-op ``(attr, scalars, algorithm)`` for ``act``, or None when it has none."""
    if isinstance(act, nn.ReLU):
        return "relu", [], ""
    if isinstance(act, nn.GELU):
        return "gelu", [], act.approximate  # "none" (erf) or "tanh"
    if isinstance(act, nn.LeakyReLU):
        return "leaky_relu", [float(act.negative_slope)], ""
    if isinstance(act, nn.PReLU) and act.weight.numel() == 1:
        return "leaky_relu", [float(act.weight.detach().reshape(()))], ""  # one slope: leaky ReLU
    if isinstance(act, nn.SiLU):
        return "swish", [], ""
    if isinstance(act, nn.Sigmoid):
        return "sigmoid", [], ""
    if isinstance(act, nn.Tanh):
        return "tanh", [], ""
    if isinstance(act, nn.Hardtanh):
        return "hardtanh", [float(act.min_val), float(act.max_val)], ""
    return None


class FusedConv2d(nn.Module):
    """A ``Conv2d`` (zero padding) with an activation applied as a oneDNN post-op on CPU."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module, post: tuple[str, list[float], str]):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach(), requires_grad=False)
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.act = act
        self.attr, self.scalars, self.algorithm = post

    @property
    def channels_last(self) -> bool:
        """Whether the weight is stored NHWC (unambiguously: a 1×1 kernel is both)."""
        w = self.weight
        return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu") and not (torch.is_grad_enabled() and x.requires_grad)):
            if self.channels_last and not x.is_contiguous(memory_format=torch.channels_last):
                x = x.contiguous(memory_format=torch.channels_last)  # as F.conv2d does for NHWC weights
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups,
                self.attr, self.scalars, self.algorithm)
        return self.act(F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups))

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, padding={tuple(self.padding)}, groups={self.groups}, post={self.attr}"


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode ``bn`` that follows ``conv`` into ``conv``'s weight and bias (in place)."""
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
        shift = bn.bias if bn.affine else torch.zeros_like(scale)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + shift)


def _plain_conv(m: nn.Module) -> bool:
    return type(m) is nn.Conv2d and m.padding_mode == "zeros" and isinstance(m.padding, tuple)


def _replace(parent: nn.Module, name: str, module: nn.Module) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(parent.get_submodule(owner) if owner else parent, attr, module)


def _fuse_pair(parent: nn.Module, conv_name: str, act_name: str, onednn: bool) -> int:
    conv, act = parent.get_submodule(conv_name), parent.get_submodule(act_name)
    if not _plain_conv(conv):
        return 0
    if isinstance(act, nn.BatchNorm2d) and act.track_running_stats and act.running_var is not None:
        fold_batchnorm(conv, act)
        _replace(parent, act_name, nn.Identity())
        return 1
    post = _activation(act) if onednn else None
    if post is None:
        return 0
    _replace(parent, conv_name, FusedConv2d(conv, act, post))
    _replace(parent, act_name, nn.Identity())
    return 1


def _neighbours(seq: nn.Sequential) -> list[tuple[str, str]]:
    """Consecutive children of ``seq`` by name, looking through ``nn.Identity`` (a folded BN)."""
    names = [name for name, child in seq.named_children() if not isinstance(child, nn.Identity)]
    return list(itertools.pairwise(names))


def fuse_for_inference(model: nn.Module) -> int:
    """Fold BatchNorms and fuse activations into convolutions, in place; returns how many."""
    onednn = onednn_fusion_available()
    count = 0
    for module in list(model.modules()):
        hook = getattr(module, "fuse_for_inference", None)
        if callable(hook):
            count += int(hook() or 0)
        pairs = list(getattr(module, "fusable_pairs", ()))
        if isinstance(module, nn.Sequential):
            # BatchNorms first, so that conv → BN → ReLU folds and then fuses
            for conv_name, bn_name in _neighbours(module):
                if isinstance(getattr(module, bn_name), nn.BatchNorm2d):
                    count += _fuse_pair(module, conv_name, bn_name, onednn)
            pairs += _neighbours(module)
        for conv_name, act_name in pairs:
            count += _fuse_pair(module, conv_name, act_name, onednn)
    return count
