"""A deep network trained as a correction to a fitted pixel-wise baseline.

``ResidualOnBase(base, net)`` computes ``base(x) + gain * net(x)``: ``base`` is a pixel model
(``linear``, ``rootpoly``) fitted in closed form on the training pixels before the network
trains, and ``gain`` is one learnable scalar that starts at zero (ReZero, Bachlechner et al.
2020), so training starts from the baseline's answer and the network only has to learn what the
baseline misses. The network itself is the registered architecture, unchanged.

``hstool train --base linear`` builds it; the weights file records ``"base": "linear"`` in its
``config``, so :func:`hstool.recon.create_model` rebuilds the same module.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualOnBase(nn.Module):
    """``base(x) + gain * net(x)`` with ``gain`` a learnable scalar initialised to 0."""

    def __init__(self, base: nn.Module, net: nn.Module):
        super().__init__()
        self.base = base
        self.net = net
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.gain.to(x.dtype) * self.net(x)
