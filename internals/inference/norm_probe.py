"""A normalisation layer with its scale frozen: the linear map a norm applies to one position's input.

Direct logit attribution needs the final norm (and Gemma 2's post-attention norms) as a linear map, so that
the contributions of the embedding, heads and MLPs to a logit add up. A norm computes
y = g * (x - m(x)) / s(x) + b, with m the mean (LayerNorm) or 0 (RMSNorm); freezing s (and m's linearity)
at the clean input leaves c -> g * (c - mean(c)) / s, which distributes over the parts of x.

Rather than reading weights by architecture (Gemma stores g - 1, LayerNorm has a bias, RMSNorm has none),
the real module is probed: for v = +-a alternating (mean 0, root mean square a, with a large so that eps
does not matter) norm(v) = g * sign(v) + b and norm(-v) = -g * sign(v) + b give g and b; norm(a * ones) is g
for an RMSNorm and b for a LayerNorm, which tells whether the mean is removed; and 1/s is the least-squares
fit of y - b = g * (x - m) / s on the clean input, exact up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_PROBE = 1e3


@dataclass
class FrozenNorm:
    gain: torch.Tensor  # g, float64 [hidden]
    bias: torch.Tensor  # b, float64 [hidden]
    subtracts_mean: bool
    inverse_scale: float  # 1 / s at the clean input

    def linear(self, part: torch.Tensor) -> torch.Tensor:
        """g * (part - mean(part)) / s: the norm's share for one part of the input [..., hidden] (float64)."""
        part = part.double()
        if self.subtracts_mean:
            part = part - part.mean(dim=-1, keepdim=True)
        return self.gain * part * self.inverse_scale


def identity_norm(hidden: int, device: torch.device) -> FrozenNorm:
    """For models without a final norm."""
    return FrozenNorm(torch.ones(hidden, dtype=torch.float64, device=device),
                      torch.zeros(hidden, dtype=torch.float64, device=device), False, 1.0)


@torch.no_grad()
def freeze_norm(norm: nn.Module, clean_input: torch.Tensor) -> FrozenNorm:
    """The norm `norm` with its scale frozen at `clean_input` [hidden] (one position)."""
    x = clean_input.reshape(-1)
    hidden = int(x.numel())
    if hidden % 2:
        raise ValueError("the norm probe needs an even hidden size")
    dtype = _dtype(norm, x)
    sign = torch.ones(hidden, dtype=torch.float64, device=x.device)
    sign[1::2] = -1.0

    def run(v: torch.Tensor) -> torch.Tensor:
        return norm(v.to(dtype)[None]).reshape(-1).double()

    plus, minus = run(_PROBE * sign), run(-_PROBE * sign)
    gain = (plus - minus) / 2 * sign
    bias = (plus + minus) / 2
    flat = run(_PROBE * torch.ones_like(sign))
    subtracts_mean = bool((flat - bias).abs().sum() < (flat - gain - bias).abs().sum())
    centred = x.double() - (x.double().mean() if subtracts_mean else 0.0)
    u = gain * centred
    y = norm(x.to(dtype)[None]).reshape(-1).double()
    inverse_scale = float(((y - bias) @ u) / (u @ u)) if float(u @ u) > 0 else 0.0
    return FrozenNorm(gain, bias, subtracts_mean, inverse_scale)


def _dtype(norm: nn.Module, x: torch.Tensor) -> torch.dtype:
    weight = getattr(norm, "weight", None)
    return weight.dtype if isinstance(weight, torch.Tensor) else x.dtype
