"""A careless or hostile peer on the worker's socket costs one connection, never the worker.

A real worker process on a tiny model gets truncated frames, lying lengths, a 1 GB header announced, invalid
JSON, unknown operations, wrong argument types and random bytes (a bounded fuzz loop from a fixed seed). Each
case must end with typed error frames or a closed connection; the worker stays up, serves the next client,
and its memory does not grow.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import time

import numpy as np
import psutil
import pytest

from internals.worker.client import SocketClient
from internals.worker.protocol import (
    MAX_HEADER,
    PACK_MIN_LEAVES,
    ConnectionClosed,
    ProtocolError,
    decode,
    encode,
    read_frame,
)
from tests_helpers import running_worker

_PREFIX = struct.Struct("<IQ")


def _split(frame: bytes) -> tuple[bytes, bytes]:
    hlen = int.from_bytes(frame[:4], "little")
    return frame[12 : 12 + hlen], frame[12 + hlen :]


def test_large_lists_travel_in_the_payload_and_come_back_as_the_same_lists():
    tokens = [f"tok{i} ✓" for i in range(12_000)]
    top = [[f"t{i}-{j}" for j in range(40)] for i in range(300)]
    body = {"tokens": tokens, "top_labels": top, "top_ids": [[i * 40 + j for j in range(40)] for i in range(300)],
            "top_probs": [[0.5 / (j + 1) for j in range(40)] for _ in range(300)],
            "small": ["a", "b"], "mixed": [1, "x", 2.0] * 200, "flags": [True, False] * 200,
            "huge_int": [2**70] * 300}
    big = {k: body[k] for k in ("tokens", "top_labels", "top_ids", "top_probs")}
    assert len(_split(encode({"id": 1, "kind": "response"}, big))[0]) < 1000, "big lists must not be spelled out in the header"
    head, payload = _split(encode({"id": 1, "kind": "response"}, body))
    _, back = decode(head, payload)
    assert back == body
    assert type(back["tokens"]) is list and type(back["top_ids"][0][0]) is int and type(back["top_probs"][0][0]) is float
    assert type(back["flags"][0]) is bool  # bools are never packed as ints
    assert PACK_MIN_LEAVES > len(body["small"])


def test_a_lens_answer_of_12k_tokens_fits_a_frame():
    positions, k, layers = 12_000, 40, 4
    answer = {"layers": [{"layer": n, "top_ids": [[7] * k] * positions, "top_probs": [[0.01] * k] * positions,
                          "top_tokens": [["piece"] * k] * positions} for n in range(layers)]}
    head, _ = _split(encode({"id": 1, "kind": "response"}, answer))
    assert len(head) < MAX_HEADER // 1000


def test_non_finite_floats_answer_as_null():
    _, back = decode(*_split(encode({"id": 1, "kind": "response"}, {"loss": float("nan"), "max": float("inf")})))
    assert back == {"loss": None, "max": None}


class _FakeSocket:
    def __init__(self, data: bytes) -> None:
        self.data, self.asked = data, 0

    def recv(self, n: int) -> bytes:
        self.asked = max(self.asked, n)
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def test_an_announced_size_is_refused_before_anything_is_allocated():
    sock = _FakeSocket(_PREFIX.pack(16, 15 * 2**30) + b"{}")
    with pytest.raises(ProtocolError):
        read_frame(sock, max_header=2**20, max_payload=2**26)  # type: ignore[arg-type]
    # Within the limits, memory grows with what arrives: a peer that announces a lot and sends little
    # makes the reader ask for at most one chunk at a time.
    sock = _FakeSocket(_PREFIX.pack(2, 2**30) + b"{}" + b"x" * 10)
    with pytest.raises(ConnectionClosed):
        read_frame(sock)  # type: ignore[arg-type]
    assert sock.asked <= 1024 * 1024


@pytest.fixture(scope="module")
def worker(tiny_models):
    with running_worker(str(tiny_models("llama"))) as w:
        yield w


def _exchange(path: str, data: bytes, timeout: float = 10.0) -> list[tuple[dict, object]]:
    """Send raw bytes, close our sending side, and read every frame the worker answers until it closes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    frames = []
    try:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the worker may close first (a refused prefix)
        while True:
            try:
                frames.append(read_frame(sock))
            except Exception:  # noqa: BLE001 - closed, or cut
                break
    finally:
        sock.close()
    return frames


def _request(method, params, rid=1, group=None) -> bytes:
    return encode({"id": rid, "kind": "request", "method": method, "group": group}, params)


def _cases(rng: random.Random, count: int):
    good = _request("tensor_stats", {"name": "model.norm.weight"})
    kinds = ["truncated", "lying_length", "huge_header", "huge_payload", "bad_json", "not_object", "unknown_op",
             "wrong_types", "random", "bad_array", "id_not_int", "deep"]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "truncated":
            yield kind, good[: rng.randrange(1, len(good))]
        elif kind == "lying_length":
            head, payload = _split(good)
            yield kind, _PREFIX.pack(len(head) + rng.randrange(1, 100), len(payload)) + head
        elif kind == "huge_header":
            yield kind, _PREFIX.pack(2**30, 0) + b"{"
        elif kind == "huge_payload":
            yield kind, _PREFIX.pack(2, 15 * 2**30) + b"{}"
        elif kind == "bad_json":
            head = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
            yield kind, _PREFIX.pack(len(head), 0) + head
        elif kind == "not_object":
            head = json.dumps(rng.choice([[1, 2], "x", 3, None])).encode()
            yield kind, _PREFIX.pack(len(head), 0) + head
        elif kind == "unknown_op":
            yield kind, _request(rng.choice(["nope", "__init__", "handle", "op_status", "", "close"]), {})
        elif kind == "wrong_types":
            method, params = rng.choice([
                ("attention", {"prompt": 123, "layer": 0}), ("attention", {"prompt": "x", "layer": "zero"}),
                ("tensor_stats", {"name": ["a"]}), ("tensor_stats", {"name": "model.norm.weight", "bins": -5}),
                ("lens", {"prompt": None}), ("tensor_stats", [1, 2, 3]), ("generate", {"prompt": "x", "max_new_tokens": "9"}),
                ("matrix_preview", {"name": "model.norm.weight", "rows": 10**12}), ("tokenize", {"text": {"a": 1}}),
                ("tensor_stats", {"name": "model.norm.weight", "extra": 1})])
            yield kind, _request(method, params, rid=rng.randrange(1, 10**6))
        elif kind == "random":
            yield kind, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif kind == "bad_array":
            head = json.dumps(
                {
                    "id": 1,
                    "kind": "request",
                    "method": "status",
                    "body": {"__array__": 3},
                    "arrays": [
                        {
                            "dtype": rng.choice(["float32", "object", "utf8"]),
                            "shape": [rng.randrange(-5, 10**6)],
                            "offset": rng.randrange(-5, 50),
                            "nbytes": rng.randrange(-5, 100),
                        }
                    ],
                }
            ).encode()
            yield kind, _PREFIX.pack(len(head), 8) + head + b"\0" * 8
        elif kind == "id_not_int":
            head = json.dumps(
                {"id": rng.choice(["x", None, 1.5, [1]]), "kind": "request", "method": "status", "body": {}}
            ).encode()
            yield kind, _PREFIX.pack(len(head), 0) + head
        elif kind == "deep":
            head = (b"[" * 100_000) + (b"]" * 100_000)
            yield kind, _PREFIX.pack(len(head), 0) + head


@pytest.mark.slow
def test_fuzzing_the_socket_never_takes_the_worker_down(worker):
    proc = psutil.Process(worker.proc.pid)
    rng = random.Random(20261202)
    warm = list(_cases(rng, 120))  # first pass: lets the worker's memory settle (imports, caches)
    for _, data in warm:
        _exchange(worker.socket_path, data)
    worker.call("tree")  # waits for the worker's background start (torch, transformers) to be over
    rss_before = proc.memory_info().rss
    started = time.monotonic()
    seen: dict[str, int] = {}
    for kind, data in _cases(rng, 2400):
        frames = _exchange(worker.socket_path, data)
        for header, body in frames:
            assert header.get("kind") in ("error", "response"), (kind, header)
            if header["kind"] == "error":
                assert isinstance(body, dict) and isinstance(body.get("type"), str) and body.get("message"), (kind, body)
                assert body["type"] != "InternalError", (kind, body)
        seen[kind] = seen.get(kind, 0) + 1
    elapsed = time.monotonic() - started
    assert worker.proc.poll() is None, "the worker died"
    growth = proc.memory_info().rss - rss_before
    print(f"\nfuzz: {sum(seen.values())} cases of {len(seen)} kinds in {elapsed:.1f} s, "
          f"worker RSS growth {growth / 2**20:.1f} MiB")  # cited in the README ("Load, faults and hostile input")
    assert growth < 64 * 2**20, f"the worker's memory grew by {growth / 2**20:.0f} MiB over the fuzz loop"
    assert len(seen) == 12 and elapsed < 240
    client = SocketClient(worker.socket_path)
    try:
        assert client.tensor_stats("model.norm.weight")["numel"] == 64
    finally:
        client.close()


def test_many_connections_then_ordinary_clients(worker):
    """What was observed: after 21 hostile connections ordinary clients were refused for minutes."""
    for _ in range(40):
        _exchange(worker.socket_path, _PREFIX.pack(2, 15 * 2**30) + b"{}")
    clients = [SocketClient(worker.socket_path) for _ in range(8)]
    try:
        for c in clients:
            assert c.status()["pid"] == worker.proc.pid
    finally:
        for c in clients:
            c.close()


def test_typed_errors_for_wrong_parameter_types(worker):
    frames = _exchange(worker.socket_path, _request("attention", {"prompt": 123, "layer": 0}, rid=5))
    assert len(frames) == 1 and frames[0][0]["id"] == 5 and frames[0][0]["kind"] == "error"
    assert frames[0][1]["type"] != "InternalError" and "prompt" in frames[0][1]["message"]


def test_an_array_answer_too_large_is_a_typed_error():
    from internals.worker.server import _fitting_frame

    big = np.zeros(1, dtype=np.float32)
    ok = _fitting_frame({"id": 3, "kind": "response"}, {"x": big})
    assert decode(*_split(ok))[0]["kind"] == "response"
    too_big = _fitting_frame({"id": 3, "kind": "response"}, {"x": "y" * (MAX_HEADER + 10)})
    header, body = decode(*_split(too_big))
    assert header == {"id": 3, "kind": "error"} and body["type"] == "AnswerTooLarge"
