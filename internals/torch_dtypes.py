"""Mapping between safetensors dtype codes and torch dtypes (imports torch: use only where needed)."""

from __future__ import annotations

import torch

from internals.errors import UserError

_CODES = {
    "BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
    "I8": torch.int8, "U8": torch.uint8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
    "BOOL": torch.bool,
}
for _code, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"), ("U16", "uint16"),
                     ("U32", "uint32"), ("U64", "uint64")):
    if hasattr(torch, _attr):
        _CODES[_code] = getattr(torch, _attr)


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
