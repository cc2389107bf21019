"""Function-preserving growth: a trained smaller configuration becomes the full-size network.

``grow_state(small, big)`` returns a state dict for ``big`` (the full configuration, freshly
initialised) that computes exactly what ``small`` computes (float rounding apart), so training
the full network can start from the smaller one's accuracy instead of from scratch (Chen,
Goodfellow & Shlens, "Net2Net: Accelerating Learning via Knowledge Transfer", ICLR 2016; here
with the zero-outgoing-weights variant of widening, which needs no noise to break symmetry):

- **wider** (more channels in a tensor that both have): the small network's values fill the
  first channels of every feature map; the weights *from* a new channel *into* an old one are
  zero, so the old channels compute what they did; the weights *into* a new channel keep the big
  network's fresh initialisation, so the new channels carry signal and receive gradient as soon
  as training moves their outgoing weights off zero. A convolution whose input is a
  concatenation (dense blocks, skip merges) says so through the model's ``concat_inputs()``
  (each piece's width), so the old channels of each piece are found where the concatenation puts
  them.
- **deeper** (modules the small network lacks): they keep their fresh initialisation, except the
  parameters the model names in ``zero_when_new`` (the last layer of a residual branch), which
  start at zero so the new module passes its input through unchanged. Dense blocks need none:
  the channels they append enter the output layer through weights that widening sets to zero.

A parameter the small network has and the big one lacks, or one that would have to shrink, is an
error: that is not growth.
"""

from __future__ import annotations

import fnmatch

import torch
from torch import nn

from hstool.hsdata import HsError


def _input_index(small_pieces: list[int] | None, big_pieces: list[int] | None, small_in: int) -> torch.Tensor:
    """Where each of the small tensor's input channels sits among the big one's."""
    if small_pieces is None:
        return torch.arange(small_in)
    if len(small_pieces) != len(big_pieces) or sum(small_pieces) != small_in:
        raise ValueError(f"concatenation pieces {small_pieces} / {big_pieces} do not fit {small_in} channels")
    index, start = [], 0
    for s, b in zip(small_pieces, big_pieces, strict=True):
        index.extend(range(start, start + s))
        start += b
    return torch.tensor(index)


def grow_state(small: nn.Module, big: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict for ``big`` under which it computes what ``small`` computes (see the module)."""
    small_state, big_state = small.state_dict(), big.state_dict()
    extra = sorted(set(small_state) - set(big_state))
    if extra:
        raise HsError(f"cannot grow: the larger network has no {', '.join(extra[:3])}")
    small_cat = small.concat_inputs() if hasattr(small, "concat_inputs") else {}
    big_cat = big.concat_inputs() if hasattr(big, "concat_inputs") else {}
    zero_patterns = getattr(big, "zero_when_new", ())
    grown = {}
    for name, fresh in big_state.items():
        fresh = fresh.detach().clone()
        if name not in small_state:
            if any(fnmatch.fnmatchcase(name, p) for p in zero_patterns):
                fresh.zero_()
            grown[name] = fresh
            continue
        old = small_state[name].detach().to(fresh.dtype)
        if old.shape == fresh.shape:
            grown[name] = old.clone()
            continue
        if old.ndim != fresh.ndim or any(o > f for o, f in zip(old.shape, fresh.shape, strict=True)):
            raise HsError(f"cannot grow {name}: {tuple(old.shape)} does not fit into {tuple(fresh.shape)}")
        if old.ndim == 1:  # biases, per-channel scales: the old channels come first
            fresh[: old.shape[0]] = old
        else:  # (out, in, ...) weights: old outputs first; their inputs from new channels are zero
            index = _input_index(small_cat.get(name), big_cat.get(name), old.shape[1])
            rows = fresh[: old.shape[0]]
            rows.zero_()
            rows[:, index] = old
            if old.shape[2:] != fresh.shape[2:]:
                raise HsError(f"cannot grow {name}: kernel {tuple(old.shape[2:])} differs from {tuple(fresh.shape[2:])}")
        grown[name] = fresh
    return grown


def grown_from(name: str, small_name: str) -> bool:
    """Whether weights of ``small_name`` can start model ``name`` through :func:`grow_state`: the
    smaller configurations are registered as ``NAME_s`` beside ``NAME``."""
    return small_name != name and small_name == f"{name}_s"
