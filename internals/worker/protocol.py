"""The worker's wire format: length-prefixed frames, a JSON header, raw array bytes. No pickle.

A frame is `<u32 header length><u64 payload length><header JSON, UTF-8><payload>`. Numpy arrays anywhere in
a message body are replaced by `{"__array__": i}` and described in the header's `arrays` list (dtype,
shape, offset and size in the payload), so big attention maps travel as raw bytes, not JSON numbers.
Documented for people in docs/protocol.md. Torch-free: the explorer's client uses this module too.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
_PREFIX = struct.Struct("<IQ")
MAX_HEADER = 64 * 1024 * 1024
MAX_PAYLOAD = 16 * 1024**3
_DTYPES = {"float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "uint16", "bool"}


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


class ConnectionClosed(Exception):
    """The peer closed the connection."""


def encode(header: dict[str, Any], body: Any = None) -> bytes:
    """One frame: `header` plus `body` (any JSON-able value with numpy arrays inside)."""
    arrays: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    offset = 0

    def strip(value: Any) -> Any:
        nonlocal offset
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value)
            if arr.dtype.name not in _DTYPES:
                arr = arr.astype(np.float32)
            raw = arr.tobytes()
            arrays.append({"dtype": arr.dtype.name, "shape": list(arr.shape), "offset": offset, "nbytes": len(raw)})
            chunks.append(raw)
            offset += len(raw)
            return {"__array__": len(arrays) - 1}
        if isinstance(value, dict):
            return {str(k): strip(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    full = dict(header)
    full["body"] = strip(body)
    full["arrays"] = arrays
    head = json.dumps(full, allow_nan=False, separators=(",", ":")).encode()
    return _PREFIX.pack(len(head), offset) + head + b"".join(chunks)


def decode(head: bytes, payload: bytes) -> tuple[dict[str, Any], Any]:
    """Inverse of `encode`: (header, body with arrays restored)."""
    try:
        header = json.loads(head.decode())
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("frame header is not JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not an object")
    specs = header.pop("arrays", []) or []
    arrays = []
    for spec in specs:
        dtype, shape, start, nbytes = spec["dtype"], tuple(spec["shape"]), int(spec["offset"]), int(spec["nbytes"])
        if dtype not in _DTYPES or start < 0 or start + nbytes > len(payload):
            raise ProtocolError("frame array description is out of range")
        arr = np.frombuffer(payload, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize, offset=start)
        arrays.append(arr.reshape(shape))

    def restore(value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1 and "__array__" in value:
                return arrays[int(value["__array__"])]
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    body = restore(header.pop("body", None))
    return header, body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionClosed()
        got += k
    return bytes(buf)


def read_frame(sock: socket.socket) -> tuple[dict[str, Any], Any]:
    """Read one frame (blocking); raises `ConnectionClosed` at end of stream."""
    hlen, plen = _PREFIX.unpack(_recv_exact(sock, _PREFIX.size))
    if hlen > MAX_HEADER or plen > MAX_PAYLOAD:
        raise ProtocolError(f"frame too large ({hlen} + {plen} bytes)")
    head = _recv_exact(sock, hlen)
    payload = _recv_exact(sock, plen) if plen else b""
    return decode(head, payload)


def jsonable(value: Any) -> Any:
    """Replace numpy arrays/scalars by lists/numbers (for `--json` output)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
