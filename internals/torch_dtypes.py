"""Torch dtypes for the engine (imports torch: use only where needed); the code table is `internals.dtypes`."""

from __future__ import annotations

import torch

from internals.dtypes import torch_dtype
from internals.errors import UserError


def torch_dtype_of_code(code: str) -> torch.dtype:
    """The torch dtype of a safetensors code (the table is `internals.dtypes`)."""
    return torch_dtype(code)


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
