"""The one table of tensor dtypes: safetensors code, readable (torch-style) name, bytes per element, kind.

Torch-free and numpy-free: the safetensors reader (sizes, names), the weight store (torch name -> code),
`internals/torch_dtypes.py` (code -> torch dtype) and the worker's matrix preview (is it a float matrix?)
all read it, and the explorer may too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dtype:
    code: str  # safetensors code, e.g. "BF16"
    name: str  # torch-style readable name (also the torch attribute), e.g. "bfloat16"
    itemsize: float  # bytes per element (0.5 for packed 4-bit)
    kind: str  # "float" | "int" | "uint" | "bool"


DTYPES: tuple[Dtype, ...] = (
    Dtype("BOOL", "bool", 1, "bool"),
    Dtype("U8", "uint8", 1, "uint"),
    Dtype("I8", "int8", 1, "int"),
    Dtype("F8_E4M3", "float8_e4m3fn", 1, "float"),
    Dtype("F8_E5M2", "float8_e5m2", 1, "float"),
    Dtype("F8_E8M0", "float8_e8m0fnu", 1, "float"),
    Dtype("I16", "int16", 2, "int"),
    Dtype("U16", "uint16", 2, "uint"),
    Dtype("F16", "float16", 2, "float"),
    Dtype("BF16", "bfloat16", 2, "float"),
    Dtype("I32", "int32", 4, "int"),
    Dtype("U32", "uint32", 4, "uint"),
    Dtype("F32", "float32", 4, "float"),
    Dtype("I64", "int64", 8, "int"),
    Dtype("U64", "uint64", 8, "uint"),
    Dtype("F64", "float64", 8, "float"),
    Dtype("F4", "float4_e2m1fn_x2", 0.5, "float"),
)
BY_CODE: dict[str, Dtype] = {d.code: d for d in DTYPES}
BY_NAME: dict[str, Dtype] = {d.name: d for d in DTYPES}

#: The dtypes whose values read as ordinary floating-point numbers (a matrix preview can show them).
PLAIN_FLOAT_CODES = frozenset({"BF16", "F16", "F32", "F64"})


def code_of_torch_name(name: str) -> str | None:
    """'torch.bfloat16' or 'bfloat16' -> 'BF16' (None when unknown)."""
    d = BY_NAME.get(name.removeprefix("torch."))
    return d.code if d else None


def is_float_code(code: str) -> bool:
    """True for the plain floating-point codes (BF16, F16, F32, F64)."""
    return code in PLAIN_FLOAT_CODES
