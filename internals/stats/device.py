"""Pattern counts on an accelerator: whole-model statistics with `--device cuda` (torch, imported only here).

The tensor's bytes go from the memory map through one pinned host buffer (CUDA) in chunks, are copied to
the device asynchronously and counted there with `torch.bincount` into one int64 table of 65,536 (or 256)
entries; the counts come back as a `PatternCounts`, so every statistic derives exactly as on the CPU and
the result is identical. Only the 8/16-bit dtypes are counted on the device; wider dtypes (F32, F64,
32/64-bit integers) keep the CPU kernels. `device="cpu"` runs the same code path on the CPU (tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from internals.errors import UserError
from internals.stats._dtypes import dtype_info
from internals.stats.core import PatternCounts, _as_bytes

#: Bytes per chunk copied to the device (two chunks in flight: one being copied, one being counted).
CHUNK_BYTES = 64 * 1024 * 1024


def check_device(device: str) -> Any:
    """The torch device for `--device`, or `UserError` when it cannot be used here."""
    if device in (None, "", "cpu-kernels"):
        return None
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        raise UserError(f"--device {device} needs torch") from None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r}: use cpu or cuda (cuda:0, cuda:1...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here; leave --device out to count on the CPU")
    if dev.type not in ("cuda", "cpu"):
        raise UserError(f"--device {device}: only cpu and cuda are supported for statistics")
    return dev


class DeviceCounter:
    """Counts bit patterns of 8/16-bit tensors on one torch device, reusing its buffers across tensors."""

    def __init__(self, device: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        import torch

        self.torch = torch
        self.device = check_device(device) or torch.device("cpu")
        self.chunk_bytes = max(8, int(chunk_bytes) // 8 * 8)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self._host = [torch.empty(self.chunk_bytes, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
            self._stream = torch.cuda.Stream(self.device)
            self._done: list[torch.cuda.Event | None] = [None, None]

    def count(self, raw: Any, dtype: str, shape: tuple[int, ...] | None = None, name: str = "") -> PatternCounts:
        torch = self.torch
        info = dtype_info(dtype)
        bits = info.pattern_bits
        if not bits:
            raise UserError(f"dtype {info.code} has no pattern counts (only 8- and 16-bit dtypes)")
        a = _as_bytes(raw)
        if shape is None:
            shape = (a.size // int(info.itemsize),)
        size = 1 << bits
        total = torch.zeros(size, dtype=torch.int64, device=self.device)
        mask = size - 1
        for i, lo in enumerate(range(0, a.size, self.chunk_bytes)):
            part = a[lo:lo + self.chunk_bytes]
            if self.cuda:
                slot = i % 2
                done = self._done[slot]
                if done is not None:
                    done.synchronize()  # the copy out of this pinned buffer has finished
                host = self._host[slot][: part.size]
                host.numpy()[:] = part
                with torch.cuda.stream(self._stream):
                    chunk = host.to(self.device, non_blocking=True)
                    ev = torch.cuda.Event()
                    ev.record(self._stream)
                    self._done[slot] = ev
                torch.cuda.current_stream(self.device).wait_stream(self._stream)
                chunk.record_stream(torch.cuda.current_stream(self.device))
            else:
                chunk = torch.from_numpy(np.array(part))  # a private copy: the map is read-only
            values = chunk.view(torch.int16 if bits == 16 else torch.uint8).to(torch.int32) & mask
            total += torch.bincount(values, minlength=size)
        counts = total.cpu().numpy()
        return PatternCounts(info.code, counts, tuple(int(s) for s in shape), name)
