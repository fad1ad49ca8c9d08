"""The worker's wire format: length-prefixed frames, a JSON header, raw array bytes. No pickle.

A frame is `<u32 header length><u64 payload length><header JSON, UTF-8><payload>`. Numpy arrays anywhere in
a message body are replaced by `{"__array__": i}` and described in the header's `arrays` list (dtype,
shape, offset and size in the payload), so big attention maps travel as raw bytes, not JSON numbers. Large
rectangular lists of strings, ints or floats (a lens's top tokens over 12k positions) travel the same way and
come back as the same lists, so the header stays small whatever the prompt length.
Documented for people in docs/protocol.md. Torch-free: the explorer's client uses this module too.
"""

from __future__ import annotations

import json
import math
import socket
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

PROTOCOL_VERSION = 2
_PREFIX = struct.Struct("<IQ")
#: Limits for answers read by a client (a worker's answers can be large arrays).
MAX_HEADER = 64 * 1024 * 1024
MAX_PAYLOAD = 16 * 1024**3
#: Limits for requests read by the worker: parameters are small, so a peer announcing more is refused.
MAX_REQUEST_HEADER = 1024 * 1024
MAX_REQUEST_PAYLOAD = 64 * 1024 * 1024
#: A nested list with at least this many leaves of one type travels in the payload (see `_grid`).
PACK_MIN_LEAVES = 256
_RECV_CHUNK = 1024 * 1024
_LIST_KINDS = {str: "utf8", int: "int64", float: "float64"}
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
            packed = _pack_grid(value)
            if packed is not None:
                spec, raw = packed
                spec["offset"] = offset
                arrays.append(spec)
                chunks.append(raw)
                offset += len(raw)
                return {"__array__": len(arrays) - 1}
            return [strip(v) for v in value]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None  # JSON has no NaN or infinity (an fp16 overflow must still answer)
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
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("frame header is not JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not an object")
    specs = header.pop("arrays", []) or []
    if not isinstance(specs, list):
        raise ProtocolError("frame array list is not a list")
    try:
        arrays = [_unpack(spec, payload) for spec in specs]
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ProtocolError("frame array description is malformed") from None

    def restore(value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1 and "__array__" in value:
                index = value["__array__"]
                if not isinstance(index, int) or not 0 <= index < len(arrays):
                    raise ProtocolError("frame refers to an array it does not describe")
                return arrays[index]
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    try:
        body = restore(header.pop("body", None))
    except RecursionError:
        raise ProtocolError("frame body is nested too deeply") from None
    return header, body


def _pack_grid(value: list | tuple) -> tuple[dict[str, Any], bytes] | None:
    """A rectangular nested list of one leaf type (str, int or float; not bool) with at least
    `PACK_MIN_LEAVES` leaves, as an array description and its bytes; None for anything else."""
    shape: list[int] = []
    level: list | tuple = value
    while isinstance(level, (list, tuple)) and level:
        shape.append(len(level))
        level = level[0]
    kind = _LIST_KINDS.get(type(level))
    if kind is None or int(np.prod(shape)) < PACK_MIN_LEAVES:
        return None
    flat: list[Any] = []
    leaf_type = type(level)

    def walk(node: Any, depth: int) -> bool:
        if depth == len(shape):
            if type(node) is not leaf_type:
                return False
            flat.append(node)
            return True
        if not isinstance(node, (list, tuple)) or len(node) != shape[depth]:
            return False
        return all(walk(child, depth + 1) for child in node)

    if not walk(value, 0):
        return None
    spec: dict[str, Any] = {"dtype": kind, "shape": shape, "list": True}
    if kind == "utf8":
        pieces = [text.encode("utf-8", "surrogatepass") for text in flat]
        ends = np.cumsum([len(p) for p in pieces], dtype=np.uint64)
        raw = ends.tobytes() + b"".join(pieces)
    else:
        try:
            raw = np.asarray(flat, dtype=kind).tobytes()
        except OverflowError:  # an int beyond int64 stays in the header as JSON
            return None
    spec["nbytes"] = len(raw)
    return spec, raw


def _unpack(spec: dict[str, Any], payload: bytes) -> Any:
    """One described array (or packed list) from the payload."""
    dtype, shape, start, nbytes = spec["dtype"], tuple(int(n) for n in spec["shape"]), int(spec["offset"]), int(spec["nbytes"])
    if start < 0 or nbytes < 0 or start + nbytes > len(payload) or any(n < 0 for n in shape):
        raise ProtocolError("frame array description is out of range")
    count = int(np.prod(shape)) if shape else 1
    if dtype == "utf8" and spec.get("list"):
        head = 8 * count
        if head > nbytes:
            raise ProtocolError("frame string list is out of range")
        ends = np.frombuffer(payload, dtype=np.uint64, count=count, offset=start).tolist()
        data = payload[start + head : start + nbytes]
        if ends and (ends[-1] > len(data) or any(b < a for a, b in zip(ends, ends[1:]))):
            raise ProtocolError("frame string list is out of range")
        texts, begin = [], 0
        for end in ends:
            texts.append(data[begin:end].decode("utf-8", "surrogatepass"))
            begin = end
        return np.array(texts, dtype=object).reshape(shape).tolist() if len(shape) > 1 else texts
    if dtype not in _DTYPES:
        raise ProtocolError(f"frame array has an unknown dtype {dtype!r}")
    if count * np.dtype(dtype).itemsize != nbytes:
        raise ProtocolError("frame array size does not match its shape")
    arr = np.frombuffer(payload, dtype=dtype, count=count, offset=start).reshape(shape)
    return arr.tolist() if spec.get("list") else arr


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly n bytes. Memory grows with what arrives, never with what a peer announces."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = sock.recv(min(_RECV_CHUNK, n - got))
        if not chunk:
            raise ConnectionClosed()
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_frame(sock: socket.socket, max_header: int = MAX_HEADER, max_payload: int = MAX_PAYLOAD) -> tuple[dict[str, Any], Any]:
    """Read one frame (blocking); raises `ConnectionClosed` at end of stream and `ProtocolError` for a frame
    over the limits (checked before anything past the prefix is read) or one that is not valid."""
    hlen, plen = _PREFIX.unpack(_recv_exact(sock, _PREFIX.size))
    if hlen > max_header or plen > max_payload:
        raise ProtocolError(f"frame too large ({hlen} + {plen} bytes; limits {max_header} + {max_payload})")
    head = _recv_exact(sock, hlen)
    payload = _recv_exact(sock, plen) if plen else b""
    return decode(head, payload)


def jsonable(value: Any, *, array: Callable[[np.ndarray], Any] = np.ndarray.tolist) -> Any:
    """Replace numpy arrays/scalars by lists/numbers (for `--json` output); `array` says how an array is
    written (default: nested lists; a recording that must read back as arrays tags them instead)."""
    if isinstance(value, np.ndarray):
        return array(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: jsonable(v, array=array) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, array=array) for v in value]
    return value
