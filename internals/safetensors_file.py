"""Read safetensors files lazily and defensively.

The header is parsed and validated by us (so a truncated or corrupt file gives a one-line error instead of
a crash deep inside a read), and tensor values are exposed as zero-copy `uint8` views of one read-only
memory map per file. Nothing is read from disk until a view is touched, and pages read are page cache the
kernel can drop: this is what keeps the peak memory of a whole-model pass bounded by a tensor, not the model.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from internals.dtypes import DTYPES
from internals.errors import ModelSourceError

#: Bytes per element of each safetensors dtype code (from the one table, `internals.dtypes`).
DTYPE_SIZES: dict[str, float] = {i.code: i.itemsize for i in DTYPES}

#: Readable (torch-style) names of the dtype codes.
DTYPE_NAMES: dict[str, str] = {i.code: i.name for i in DTYPES}

_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorEntry:
    """Where one stored tensor lives: its file, dtype code, shape and absolute byte range."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, self.dtype.lower())


class SafetensorsFile:
    """One `.safetensors` file: its validated header, metadata and a lazily created memory map."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries, self.metadata = _read_header(self.path)
        self._map: np.memmap | None = None

    def view(self, entry: TensorEntry) -> np.ndarray:
        """The tensor's raw bytes as a read-only uint8 view of the memory map (no copy)."""
        if self._map is None:
            if os.path.getsize(self.path) == 0:
                return np.zeros(0, dtype=np.uint8)
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        return self._map[entry.start : entry.end]

    def close(self) -> None:
        if self._map is not None:
            mm = getattr(self._map, "_mmap", None)
            self._map = None
            if mm is not None:
                try:
                    mm.close()
                except (BufferError, ValueError):
                    pass  # a view is still alive; the map closes when it is collected


def _read_header(path: Path) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """Parse and validate a safetensors header; raise `ModelSourceError` with a fix on any problem."""
    where = str(path)
    redo = "re-download or re-save it"
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelSourceError(f"{where} is not a safetensors file (only {size} bytes): {redo}")
            (hlen,) = struct.unpack("<Q", head)
            if hlen > _MAX_HEADER or 8 + hlen > size:
                raise ModelSourceError(
                    f"{where} is truncated or not a safetensors file (header of {hlen} bytes in a "
                    f"{size}-byte file): {redo}"
                )
            raw = fh.read(hlen)
    except OSError as exc:
        raise ModelSourceError(f"cannot read {where}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelSourceError(f"{where} has a corrupt safetensors header (not JSON): {redo}") from None
    if not isinstance(header, dict):
        raise ModelSourceError(f"{where} has a corrupt safetensors header: {redo}")
    metadata = header.pop("__metadata__", None) or {}
    base = 8 + hlen
    entries: dict[str, TensorEntry] = {}
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        try:
            dtype = str(info["dtype"])
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelSourceError(f"{where}: tensor {name!r} has a malformed header entry: {redo}") from None
        if dtype not in DTYPE_SIZES:
            raise ModelSourceError(
                f"{where}: tensor {name!r} has dtype {dtype!r}, which llm-internals cannot read; "
                "convert the checkpoint to bf16/fp16/fp32"
            )
        if any(d < 0 for d in shape) or begin < 0 or end < begin:
            raise ModelSourceError(f"{where}: tensor {name!r} has invalid shape or offsets: {redo}")
        expected = math.ceil(math.prod(shape) * DTYPE_SIZES[dtype])
        if end - begin != expected:
            raise ModelSourceError(
                f"{where}: tensor {name!r} spans {end - begin} bytes but {dtype}{list(shape)} needs "
                f"{expected}: the file is corrupt; {redo}"
            )
        if base + end > size:
            raise ModelSourceError(
                f"{where} is truncated: tensor {name!r} ends at byte {base + end} but the file has "
                f"{size} bytes; {redo}"
            )
        entries[name] = TensorEntry(name, path, dtype, shape, base + begin, base + end)
        spans.append((begin, end, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0 and e1 > b1 and e0 > b0:
            raise ModelSourceError(f"{where}: tensors {n0!r} and {n1!r} overlap: the file is corrupt; {redo}")
    return entries, {str(k): str(v) for k, v in metadata.items()}
