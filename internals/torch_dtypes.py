"""Mapping between safetensors dtype codes and torch dtypes (imports torch: use only where needed)."""

from __future__ import annotations

import torch

from internals.dtypes import DTYPES
from internals.errors import UserError

#: Every code of the dtype table (internals/dtypes.py) that this torch version can hold.
#: (Not the packed 4-bit and the exponent-only 8-bit codes: their elements are not one torch element each.)
_CODES = {d.code: getattr(torch, d.name) for d in DTYPES
          if d.code not in ("F4", "F8_E8M0") and isinstance(getattr(torch, d.name, None), torch.dtype)}


def torch_dtype_of_code(code: str) -> torch.dtype:
    try:
        return _CODES[code]
    except KeyError:
        raise UserError(f"dtype {code} cannot be read as a torch tensor by this torch version") from None


def parse_dtype(name: str) -> torch.dtype:
    """Parse a user-given dtype name (`--dtype bfloat16`, `bf16`, `fp32`, ...)."""
    aliases = {
        "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
        "half": torch.float16, "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    }
    try:
        return aliases[name.lower()]
    except KeyError:
        raise UserError(f"unknown dtype {name!r}: use bfloat16, float16 or float32") from None
