"""The one table of tensor element types: safetensors dtype codes <-> readable names, numpy dtypes, sizes.

Every module that needs to know what "BF16" is (the safetensors reader, the statistics kernels, the
matrix preview, the torch bridge) reads it from here, so a new dtype is added in one place. Only numpy
at import; the torch mapping (`torch_dtype`, `code_of_torch_dtype`) imports torch when first called.

A "code" is the safetensors header string ("BF16"); a "name" is the torch-style readable name
("bfloat16") used in JSON output; `numpy` is the little-endian numpy dtype string whose items hold one
element's bits: floats without a numpy type (bfloat16, float8) are carried as unsigned integers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from internals.errors import UserError


@dataclass(frozen=True)
class DtypeInfo:
    code: str  # safetensors code, e.g. "BF16"
    name: str  # torch-style readable name, e.g. "bfloat16"
    itemsize: float  # bytes per element (F4 packs two per byte: 0.5)
    kind: str  # "float" | "int" | "uint" | "bool"
    numpy: str  # numpy dtype string holding one element's bits, e.g. "<u2" for BF16 ("" if none)

    @property
    def pattern_bits(self) -> int:
        """Bits per element when every bit pattern can be counted (8 or 16), else 0."""
        return int(self.itemsize * 8) if self.itemsize in (1, 2) else 0


DTYPES: tuple[DtypeInfo, ...] = (
    DtypeInfo("BF16", "bfloat16", 2, "float", "<u2"),
    DtypeInfo("F16", "float16", 2, "float", "<f2"),
    DtypeInfo("F32", "float32", 4, "float", "<f4"),
    DtypeInfo("F64", "float64", 8, "float", "<f8"),
    DtypeInfo("F8_E4M3", "float8_e4m3fn", 1, "float", "u1"),
    DtypeInfo("F8_E5M2", "float8_e5m2", 1, "float", "u1"),
    DtypeInfo("F8_E8M0", "float8_e8m0fnu", 1, "float", "u1"),
    DtypeInfo("F4", "float4_e2m1fn_x2", 0.5, "float", ""),
    DtypeInfo("I8", "int8", 1, "int", "i1"),
    DtypeInfo("U8", "uint8", 1, "uint", "u1"),
    DtypeInfo("I16", "int16", 2, "int", "<i2"),
    DtypeInfo("U16", "uint16", 2, "uint", "<u2"),
    DtypeInfo("I32", "int32", 4, "int", "<i4"),
    DtypeInfo("U32", "uint32", 4, "uint", "<u4"),
    DtypeInfo("I64", "int64", 8, "int", "<i8"),
    DtypeInfo("U64", "uint64", 8, "uint", "<u8"),
    DtypeInfo("BOOL", "bool", 1, "bool", "u1"),
)
BY_CODE: dict[str, DtypeInfo] = {i.code: i for i in DTYPES}
#: Codes the statistics kernels read (F8_E8M0 and F4 are recognised in headers but not analysed).
STATS_CODES = frozenset(BY_CODE) - {"F8_E8M0", "F4"}
#: Floating-point codes with a numpy or bit-shift route to float32 (matrix previews).
FLOAT_MATRIX_CODES = ("BF16", "F16", "F32", "F64")

_ALIASES = {i.name: i.code for i in DTYPES}
_ALIASES.update({"half": "F16", "float": "F32", "double": "F64", "long": "I64", "int": "I32",
                 "short": "I16", "float8_e4m3": "F8_E4M3", "bf16": "BF16", "fp16": "F16", "fp32": "F32"})


def lookup(dtype: str) -> DtypeInfo | None:
    """The entry for a safetensors code, a torch-style name ("bfloat16", "torch.bfloat16") or an alias."""
    key = str(dtype).strip()
    key = key.removeprefix("torch.")
    return BY_CODE.get(key.upper()) or BY_CODE.get(_ALIASES.get(key.lower(), ""))


def readable_name(code: str) -> str:
    """'BF16' -> 'bfloat16'; an unknown code is lower-cased."""
    info = BY_CODE.get(code)
    return info.name if info is not None else str(code).lower()


def as_float32(typed: Any, code: str):
    """numpy float32 values of a typed view (see `DtypeInfo.numpy`) of a floating-point dtype.

    BF16 is the top half of a float32, so a 16-bit shift is exact; F16/F32/F64 use numpy's casts (F64
    rounds to nearest even, as torch's `.to(torch.float32)` does).
    """
    import numpy as np

    if code == "BF16":
        return (typed.astype(np.uint32) << 16).view(np.float32)
    if code in ("F16", "F32", "F64"):
        return typed.astype(np.float32)
    raise UserError(f"dtype {code} has no float32 route")


@functools.cache
def _torch_tables() -> tuple[dict[str, Any], dict[Any, str]]:
    import torch

    to_torch = {i.code: getattr(torch, i.name) for i in DTYPES if hasattr(torch, i.name)}
    return to_torch, {v: k for k, v in to_torch.items()}


def torch_dtype(code: str):
    """The torch dtype of a safetensors code (imports torch); `UserError` when this torch has none."""
    try:
        return _torch_tables()[0][code]
    except KeyError:
        raise UserError(f"dtype {code} cannot be read as a torch tensor by this torch version") from None


def code_of_torch_dtype(dtype: Any) -> str | None:
    """'BF16' for torch.bfloat16 (imports torch); None for a dtype safetensors has no code for."""
    return _torch_tables()[1].get(dtype)


BY_NAME: dict[str, DtypeInfo] = {i.name: i for i in DTYPES}


def code_of_torch_name(name: str) -> str | None:
    """'torch.bfloat16' or 'bfloat16' -> 'BF16' (None when unknown)."""
    info = BY_NAME.get(name.removeprefix("torch."))
    return info.code if info else None


def is_float_code(code: str) -> bool:
    """True for the plain floating-point codes (BF16, F16, F32, F64): the ones a matrix preview can show."""
    return code in FLOAT_MATRIX_CODES
