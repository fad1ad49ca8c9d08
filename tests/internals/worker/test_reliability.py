"""Reliability on a shared box: a closed connection cancels its requests, long operations hold the compute lock
per step (another client is answered between two tokens), the new wire errors are typed, the status reports
the model's own GPUs, out-of-memory hints follow the loaded dtype, and a broken CUDA context makes the worker
answer a typed error and exit (so that the explorer restarts it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest

from internals.errors import (
    AnswerTooLarge,
    BadRequest,
    Busy,
    DeviceFailed,
    OutOfMemory,
    WorkerCrashed,
    from_wire,
    to_wire,
)
from internals.worker.client import InProcessClient, SocketClient
from internals.worker.contract import NoParams
from internals.worker.fair_lock import FairLock
from internals.worker.operations import OPERATIONS, operation

LONG = 60_000  # tokens: minutes of generation on the tiny "llama-long" model


@pytest.fixture(scope="module")
def served(tiny_models, tmp_path_factory):
    """A real `WorkerServer` (threads in this process) on the long-generation model, and its service."""
    from internals.model import open_model
    from internals.worker.server import WorkerServer
    from internals.worker.service import ModelService

    service = ModelService(open_model(str(tiny_models("llama-long"))))
    path = tmp_path_factory.mktemp("sock") / "w.sock"
    server = WorkerServer(service, path)
    server.bind()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    warm = SocketClient(str(path))
    warm.load()
    warm.close()
    yield service, str(path)
    server.stop()


def _start_long_generation(path: str) -> tuple[SocketClient, threading.Event, threading.Thread]:
    client = SocketClient(path)
    streaming = threading.Event()

    def consume():
        try:
            for _ in client.generate("def", max_new_tokens=LONG, group="long"):
                streaming.set()
        except (WorkerCrashed, OSError):
            pass

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert streaming.wait(30), "the generation never streamed"
    return client, streaming, thread


def _wait_until(predicate, timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return time.perf_counter() - start
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


def test_a_closed_connection_cancels_its_requests(served):
    service, path = served
    client, _, thread = _start_long_generation(path)
    assert service.active_requests() == 1
    client.close()
    took = _wait_until(lambda: service.active_requests() == 0, 3.0)
    assert took < 2.0
    thread.join(5)
    assert not service.compute_lock.locked()


def test_another_client_is_answered_between_two_generated_tokens(served):
    service, path = served
    generating, _, thread = _start_long_generation(path)
    other = SocketClient(path)
    try:
        timings = []
        for layer in (0, 1, 0):
            start = time.perf_counter()
            answer = other.attention("def f(x):", layer=layer)
            timings.append(time.perf_counter() - start)
            assert answer["layer"] == layer
        assert service.active_requests() == 2 or service.active_requests() == 1  # the generation still runs
        assert thread.is_alive(), "the generation ended: the test proves nothing"
        assert max(timings) < 2.0, timings
    finally:
        other.close()
        generating.close()
        _wait_until(lambda: service.active_requests() == 0, 3.0)


def test_a_demo_gives_the_lock_to_waiting_requests_at_each_step(served):
    """The `run_demo` operation holds the lock for the whole demo but yields it at every progress report."""
    from internals.worker.demos import register, unregister

    _, path = served
    steps = 200

    def slow_demo(opened, params, emit=None, progress=None, should_stop=None, yield_lock=None, runtime=None):
        from lessons.demos._context import DemoContext

        ctx = DemoContext(emit=emit, progress=progress, should_stop=should_stop, yield_lock=yield_lock,
                          runtime=runtime)
        for step in range(steps):
            if ctx.stop_requested():
                break
            time.sleep(0.02)  # one "training step" under the lock
            ctx.progress((step + 1) / steps, f"step {step + 1}")
        return {"steps": step + 1, "runtime": ctx.runtime}

    register("test-slow", slow_demo)
    demo_client, other = SocketClient(path), SocketClient(path)
    try:
        outcome = {}
        started = threading.Event()
        thread = threading.Thread(target=lambda: outcome.update(list(demo_client.run_demo(
            "test-slow", on_progress=lambda f, m: started.set()))[-1]["result"]), daemon=True)
        thread.start()
        assert started.wait(10)
        start = time.perf_counter()
        answer = other.attention("abc", layer=1)
        waited = time.perf_counter() - start
        assert answer["layer"] == 1
        assert thread.is_alive() and waited < 1.0, waited  # the demo runs 4 s; one step is 20 ms
        thread.join(20)
        assert outcome["steps"] == steps and outcome["runtime"]["device"] is None
    finally:
        unregister("test-slow")
        demo_client.close()
        other.close()


def test_fair_lock_serves_a_waiter_at_the_next_step():
    lock = FairLock()
    order = []
    lock.acquire()
    waiter = threading.Thread(target=lambda: (lock.acquire(), order.append("waiter"), lock.release()))
    waiter.start()
    _wait_until(lambda: lock.waiting() == 1, 2.0)
    assert lock.yield_to_waiters() is True  # the waiter ran before we got the lock back
    order.append("holder")
    assert order == ["waiter", "holder"] and lock.waiting() == 0
    assert lock.yield_to_waiters() is False
    lock.release()
    waiter.join(2)
    assert not lock.locked()


@pytest.mark.parametrize("error", [Busy("wait"), AnswerTooLarge("too big"), BadRequest("an integer id"),
                                   DeviceFailed("gone")])
def test_the_worker_s_refusals_are_typed_on_the_client(error):
    back = from_wire(to_wire(error))
    assert type(back) is type(error) and str(back) == str(error)


def test_too_many_requests_on_one_connection_are_a_busy_error(served):
    import socket

    from internals.worker.protocol import encode, read_frame
    from internals.worker.server import MAX_IN_FLIGHT

    service, path = served
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    try:
        # a long generation per request: they all stay in flight
        frames = b"".join(encode({"id": i, "kind": "request", "method": "generate", "group": None},
                                 {"prompt": "a", "max_new_tokens": LONG}) for i in range(1, MAX_IN_FLIGHT + 3))
        sock.sendall(frames)
        sock.settimeout(10)
        while True:
            header, body = read_frame(sock)
            if header["kind"] == "error":
                assert isinstance(from_wire(body), Busy), body
                break
    finally:
        sock.close()
        _wait_until(lambda: service.active_requests() == 0, 5.0)


def test_status_reports_the_gpus_of_the_device_map_not_gpu_0(monkeypatch):
    import torch

    from internals.worker.ops.status import gpu_memory, model_cuda_devices

    asked = []
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d=None: asked.append(("alloc", str(d))) or
                        {"cuda:1": 100, "cuda:3": 300}[str(d)])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: asked.append(("info", str(d))) or
                        {"cuda:1": (10, 1000), "cuda:3": (30, 3000)}[str(d)])
    loaded = SimpleNamespace(device=torch.device("cuda:1"), dtype=torch.bfloat16, model=SimpleNamespace(
        hf_device_map={"model.embed_tokens": 1, "model.layers.0": "cuda:3", "model.layers.1": "cpu",
                       "lm_head": "disk"}))
    assert model_cuda_devices(loaded) == ["cuda:1", "cuda:3"]
    assert gpu_memory(loaded) == [
        {"device": "cuda:1", "allocated_bytes": 100, "free_bytes": 10, "total_bytes": 1000},
        {"device": "cuda:3", "allocated_bytes": 300, "free_bytes": 30, "total_bytes": 3000}]
    assert ("alloc", "cuda:0") not in asked and ("info", "cuda:0") not in asked

    from internals.worker.operations import OpContext
    from internals.worker.ops.status import status

    service = SimpleNamespace(loaded_model=loaded, options=SimpleNamespace(device=None, dtype=None), started=0.0,
                              source=SimpleNamespace(display_name="m"), background=None)
    answer = status(OpContext(1, lambda h, b: None, service), NoParams())
    assert answer["gpu_allocated_bytes"] == 400 and answer["gpu_total_bytes"] == 4000
    assert answer["gpu_free_bytes"] == 40 and answer["rss_bytes"] > 0
    single = SimpleNamespace(device=torch.device("cuda:2"), model=SimpleNamespace())
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d=None: 7 if str(d) == "cuda:2" else 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (1, 2) if str(d) == "cuda:2" else (0, 0))
    assert gpu_memory(single) == [{"device": "cuda:2", "allocated_bytes": 7, "free_bytes": 1, "total_bytes": 2}]
    assert gpu_memory(SimpleNamespace(device=torch.device("cpu"), model=SimpleNamespace())) == []


def test_the_oom_hint_follows_the_loaded_dtype(tiny_models):
    import torch

    from internals.inference.errors import OOM_MESSAGE, oom_message
    from internals.model import open_model
    from internals.worker.service import ModelService

    assert "--dtype bfloat16" in oom_message(torch.float32) and oom_message(None) == OOM_MESSAGE
    for small in (torch.bfloat16, torch.float16, "float8_e4m3fn", "int8"):
        assert "--dtype bfloat16" not in oom_message(small)

    @operation("test_gpu_oom", request=NoParams, result=dict, compute_lock=True)
    def gpu_oom(ctx, req):
        from internals.inference.errors import translate_oom

        with translate_oom():  # as every engine function does: the generic hint
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    service = ModelService(open_model(str(tiny_models("llama"))))
    client = InProcessClient(service)
    try:
        for dtype, hinted in ((torch.bfloat16, False), (torch.float32, True)):
            service.loaded_model = SimpleNamespace(dtype=dtype, close=lambda: None)
            with pytest.raises(OutOfMemory) as err:
                client.call("test_gpu_oom", {})
            assert ("--dtype bfloat16" in str(err.value)) is hinted, str(err.value)
    finally:
        OPERATIONS.pop("test_gpu_oom")
        service.loaded_model = None
        client.close()


_BROKEN_WORKER = textwrap.dedent("""
    import sys
    from internals.worker.contract import NoParams
    from internals.worker.operations import operation
    import internals.worker.ops  # noqa: F401

    @operation("test_device_assert", request=NoParams, result=dict, compute_lock=True)
    def device_assert(ctx, req):
        raise RuntimeError("CUDA error: device-side assert triggered\\nCompile with TORCH_USE_CUDA_DSA")

    from internals.cli.main import main
    sys.exit(main(["worker", sys.argv[1], "--socket", sys.argv[2], "--log", sys.argv[3]]))
""")


def _connect(path: str, timeout: float) -> SocketClient:
    """A client of a worker that is starting (its socket appears before it listens)."""
    start = time.perf_counter()
    while True:
        try:
            return SocketClient(path)
        except WorkerCrashed:
            if time.perf_counter() - start > timeout:
                raise
            time.sleep(0.1)


def test_a_broken_cuda_context_is_answered_typed_then_the_worker_exits(tiny_models, tmp_path):
    from tests_helpers import REPO

    sock, log = tmp_path / "w.sock", tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "-c", _BROKEN_WORKER, str(tiny_models("llama")), str(sock), str(log)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        client = _connect(str(sock), 60.0)
        assert client.status()["pid"] == proc.pid
        with pytest.raises(DeviceFailed) as err:
            client.call("test_device_assert", {})
        assert "restart" in str(err.value) and "device-side assert" in str(err.value)
        assert proc.wait(timeout=10) == 70
        text = log.read_text()
        assert "worker exiting with status 70 after an unrecoverable accelerator error" in text
        with pytest.raises(WorkerCrashed):
            client.status()
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_model_on_a_gpu_leaves_a_core_to_the_kernel_launching_thread(monkeypatch):
    """Statistics threads use every core by default; with the model on CUDA they leave one free."""
    from types import SimpleNamespace

    from internals import stats
    from internals.worker.service import leave_a_core_for_cuda

    monkeypatch.setenv("NUMBA_NUM_THREADS", "4")
    stats.set_threads(None)
    try:
        leave_a_core_for_cuda(SimpleNamespace(device="cpu"))
        assert stats.threads() == 4
        leave_a_core_for_cuda(SimpleNamespace(device="cuda:0"))
        assert stats.threads() == 3
    finally:
        stats.set_threads(None)
