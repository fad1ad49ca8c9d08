"""Per-bit-pattern value tables of the 8/16-bit dtypes (the dtype table itself is `internals.dtypes`).

Only numpy here. A "pattern" is the raw little-endian bit pattern of one element read as an unsigned
integer; for the 8- and 16-bit dtypes there are at most 65,536 of them, and the tables below give the
float64 value of each (NaN where the pattern is a NaN).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from internals.dtypes import STATS_CODES, DtypeInfo, lookup
from internals.errors import UserError


def dtype_info(dtype: str) -> DtypeInfo:
    """Look up a safetensors dtype code (or a torch-style name); `UserError` when statistics cannot read it."""
    info = lookup(dtype)
    if info is None or info.code not in STATS_CODES:
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


@functools.cache
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
    """Per-dtype lookup tables for deriving statistics from pattern counts (one entry per pattern)."""

    values: np.ndarray  # float64 value per pattern
    rank: np.ndarray  # int64: position of the pattern among the finite patterns sorted by value (stable), -1 if not finite
    is_nan: np.ndarray  # bool
    is_inf: np.ndarray  # bool
    is_zero: np.ndarray  # bool (-0.0 too)


@functools.cache
def pattern_tables(code: str) -> PatternTables:
    v = pattern_values(code)
    fin_idx = np.flatnonzero(np.isfinite(v))
    order = fin_idx[np.argsort(v[fin_idx], kind="stable")]
    rank = np.full(v.size, -1, np.int64)
    rank[order] = np.arange(order.size)
    tables = PatternTables(values=v, rank=rank, is_nan=np.isnan(v), is_inf=np.isinf(v), is_zero=v == 0.0)
    for a in (tables.rank, tables.is_nan, tables.is_inf, tables.is_zero):
        a.setflags(write=False)
    return tables
