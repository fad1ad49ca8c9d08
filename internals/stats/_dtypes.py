"""Safetensors dtype codes: readable names, element sizes and per-bit-pattern value tables.

Only numpy here. A "pattern" is the raw little-endian bit pattern of one element read as an unsigned
integer; for the 8- and 16-bit dtypes there are at most 65,536 of them, and the tables below give the
float64 value of each (NaN where the pattern is a NaN).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from internals.errors import UserError


@dataclass(frozen=True)
class DtypeInfo:
    code: str  # safetensors code, e.g. "BF16"
    name: str  # torch-style readable name, e.g. "bfloat16"
    itemsize: int  # bytes per element
    kind: str  # "float" | "int" | "uint" | "bool"

    @property
    def pattern_bits(self) -> int:
        """Bits per element when every bit pattern can be counted (8 or 16), else 0."""
        return self.itemsize * 8 if self.itemsize <= 2 else 0


_INFOS = [
    DtypeInfo("BF16", "bfloat16", 2, "float"),
    DtypeInfo("F16", "float16", 2, "float"),
    DtypeInfo("F32", "float32", 4, "float"),
    DtypeInfo("F64", "float64", 8, "float"),
    DtypeInfo("F8_E4M3", "float8_e4m3fn", 1, "float"),
    DtypeInfo("F8_E5M2", "float8_e5m2", 1, "float"),
    DtypeInfo("I8", "int8", 1, "int"),
    DtypeInfo("U8", "uint8", 1, "uint"),
    DtypeInfo("I16", "int16", 2, "int"),
    DtypeInfo("U16", "uint16", 2, "uint"),
    DtypeInfo("I32", "int32", 4, "int"),
    DtypeInfo("U32", "uint32", 4, "uint"),
    DtypeInfo("I64", "int64", 8, "int"),
    DtypeInfo("U64", "uint64", 8, "uint"),
    DtypeInfo("BOOL", "bool", 1, "bool"),
]
_BY_CODE = {i.code: i for i in _INFOS}
# Also accept torch-style names ("bfloat16", "torch.bfloat16") and a few common aliases.
_ALIASES = {i.name: i.code for i in _INFOS}
_ALIASES.update({"half": "F16", "float": "F32", "double": "F64", "long": "I64", "int": "I32",
                 "short": "I16", "float8_e4m3": "F8_E4M3"})


def dtype_info(dtype: str) -> DtypeInfo:
    """Look up a safetensors dtype code (or a torch-style name); `UserError` when unsupported."""
    key = str(dtype).strip()
    if key.startswith("torch."):
        key = key[len("torch."):]
    info = _BY_CODE.get(key.upper()) or _BY_CODE.get(_ALIASES.get(key.lower(), ""))
    if info is None:
        raise UserError(f"dtype {dtype} is not supported for statistics")
    return info


def readable_dtype(dtype: str) -> str:
    """'BF16' -> 'bfloat16' (the torch-style name used in JSON output)."""
    return dtype_info(dtype).name


def _decode_e4m3fn(p: np.ndarray) -> np.ndarray:
    """float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; S.1111.111 is NaN."""
    p = p.astype(np.int64)
    sign = np.where(p & 0x80, -1.0, 1.0)
    exp = (p >> 3) & 0xF
    man = (p & 0x7).astype(np.float64)
    val = np.where(exp == 0, man / 8.0 * 2.0**-6, (1.0 + man / 8.0) * np.exp2(exp - 7.0))
    val = sign * val
    val[(exp == 15) & ((p & 0x7) == 7)] = np.nan
    return val


@functools.lru_cache(maxsize=None)
def pattern_values(code: str) -> np.ndarray:
    """float64 value of every bit pattern of an 8/16-bit dtype (read-only array of 256 or 65,536)."""
    info = dtype_info(code)
    bits = info.pattern_bits
    if not bits:
        raise ValueError(f"{code} has no pattern table")
    p = np.arange(1 << bits, dtype=np.uint16 if bits == 16 else np.uint8)
    c = info.code
    with np.errstate(invalid="ignore"):  # signalling-NaN patterns
        v = _decode(c, p)
    v.setflags(write=False)
    return v


def _decode(c: str, p: np.ndarray) -> np.ndarray:
    if c == "BF16":
        v = (p.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    elif c == "F16":
        v = p.view(np.float16).astype(np.float64)
    elif c == "F8_E5M2":  # the top byte of a float16
        v = (p.astype(np.uint16) << 8).view(np.float16).astype(np.float64)
    elif c == "F8_E4M3":
        v = _decode_e4m3fn(p)
    elif c == "I16":
        v = p.view(np.int16).astype(np.float64)
    elif c == "I8":
        v = p.view(np.int8).astype(np.float64)
    elif c == "BOOL":
        v = (p != 0).astype(np.float64)
    else:  # U8, U16
        v = p.astype(np.float64)
    return v


@dataclass(frozen=True)
class PatternTables:
    """Per-dtype tables for deriving statistics from pattern counts."""

    values: np.ndarray  # float64 value per pattern
    finite_order: np.ndarray  # patterns with a finite value, sorted by value (stable)
    finite_sorted: np.ndarray  # values[finite_order]
    nan_patterns: np.ndarray
    inf_patterns: np.ndarray
    zero_patterns: np.ndarray


@functools.lru_cache(maxsize=None)
def pattern_tables(code: str) -> PatternTables:
    v = pattern_values(code)
    finite = np.isfinite(v)
    fin_idx = np.flatnonzero(finite)
    order = fin_idx[np.argsort(v[fin_idx], kind="stable")]
    tables = PatternTables(
        values=v,
        finite_order=order,
        finite_sorted=v[order],
        nan_patterns=np.flatnonzero(np.isnan(v)),
        inf_patterns=np.flatnonzero(np.isinf(v)),
        zero_patterns=np.flatnonzero(v == 0.0),
    )
    for a in (tables.finite_order, tables.finite_sorted, tables.nan_patterns, tables.inf_patterns,
              tables.zero_patterns):
        a.setflags(write=False)
    return tables
