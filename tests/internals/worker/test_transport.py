"""The worker transport: codec, a real worker process on a private socket, several clients, crashes."""

from __future__ import annotations

import os
import signal
import stat
import time

import numpy as np
import pytest

from internals.worker.client import InProcessClient, RemoteError, SocketClient, WorkerCrashed
from internals.worker.protocol import decode, encode
from internals.worker.spawn import ManagedWorker, WorkerOptions


def test_codec_round_trip_keeps_arrays_raw():
    body = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "meta": [1, "x", {"y": np.int64(3)}],
            "ids": np.array([1, 2], dtype=np.int64)}
    frame = encode({"id": 7, "kind": "response"}, body)
    hlen = int.from_bytes(frame[:4], "little")
    header, back = decode(frame[12 : 12 + hlen], frame[12 + hlen :])
    assert header["id"] == 7 and b"pickle" not in frame
    assert back["w"].dtype == np.float32 and back["w"].shape == (3, 4) and np.array_equal(back["w"], body["w"])
    assert back["meta"] == [1, "x", {"y": 3}] and back["ids"].tolist() == [1, 2]
    # the floats travel as raw bytes, not as JSON text
    assert frame.endswith(body["w"].tobytes() + body["ids"].tobytes())


def _service(folder):
    from internals.model import open_model
    from internals.worker.service import ModelService

    return ModelService(open_model(str(folder)))


def test_in_process_client_answers_weight_questions(tiny_models):
    from internals.model import open_model

    folder = tiny_models("qwen2", "bfloat16")
    client = InProcessClient(_service(folder))
    assert client.summary() == open_model(str(folder)).summary()
    tree = client.tree()
    assert tree[0]["class"] == "Qwen2ForCausalLM"
    stats = client.tensor_stats("model.layers.0.mlp.down_proj.weight", bins=20)
    assert sum(stats["histogram"]["counts"]) == stats["numel"]
    clipped = client.tensor_stats("model.layers.0.mlp.down_proj.weight", bins=20, clip=True)
    assert clipped["histogram_range"] == [stats["quantiles"]["p1"], stats["quantiles"]["p99"]]
    assert sum(clipped["histogram"]["counts"]) < stats["numel"]
    preview = client.matrix_preview("model.layers.0.mlp.down_proj.weight", rows=8, cols=16)
    assert preview["values"].shape == (8, 16) and (preview["values"] >= 0).all()
    cross = client.cross_layer()
    assert cross["num_layers"] == 3 and {"q", "k", "v", "o", "gate", "up", "down"} <= set(cross["components"])
    assert cross["metrics"]["std"]["q"][2] == pytest.approx(
        client.tensor_stats("model.layers.2.self_attn.q_proj.weight")["std"])
    assert cross["names"]["down"][1] == "model.layers.1.mlp.down_proj.weight"
    with pytest.raises(RemoteError) as err:
        client.tensor_stats("no.such.tensor")
    assert "no tensor named" in str(err.value)
    with pytest.raises(RemoteError):
        client.call("tensor_stats", {"wrong": 1})


def test_matrix_preview_is_exact_block_mean(tiny_models):
    from safetensors.torch import load_file

    folder = tiny_models("llama")
    client = InProcessClient(_service(folder))
    w = load_file(folder / "model.safetensors")["model.layers.0.mlp.up_proj.weight"].float().abs()
    out = client.matrix_preview("model.layers.0.mlp.up_proj.weight", rows=4, cols=8)
    expect = w.reshape(4, w.shape[0] // 4, 8, w.shape[1] // 8).mean(dim=(1, 3)).numpy()
    assert np.allclose(out["values"], expect, rtol=1e-5)


@pytest.fixture
def worker(tiny_models):
    w = ManagedWorker(WorkerOptions(model=str(tiny_models("llama"))))
    w.start()
    yield w
    w.close()
    assert w.proc.poll() is not None, "the worker outlived its owner"


def test_worker_process_socket_is_private(worker):
    assert stat.S_IMODE(os.stat(worker.socket_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(worker.socket_path)).st_mode) == 0o700
    status = worker.status()
    assert status["pid"] == worker.proc.pid and status["pid"] != os.getpid()


def test_two_clients_share_one_worker(worker):
    other = SocketClient(worker.socket_path)
    try:
        a = worker.tensor_stats("model.norm.weight")
        b = other.tensor_stats("model.norm.weight")
        assert a == b
        assert other.status()["pid"] == worker.proc.pid
    finally:
        other.close()


def test_worker_killed_mid_request_is_reported_and_restarted(tiny_models):
    import threading

    worker = ManagedWorker(WorkerOptions(model=str(tiny_models("llama-long"))))  # can generate for minutes
    worker.start()
    try:
        streaming = threading.Event()
        outcome = {}

        def long_request():
            try:
                for _ in worker.generate("def", max_new_tokens=60_000, group="long"):
                    streaming.set()
                outcome["finished"] = True
            except WorkerCrashed as exc:
                outcome["crashed"] = str(exc)

        thread = threading.Thread(target=long_request)
        thread.start()
        assert streaming.wait(60)
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=5)
        thread.join(timeout=30)
        assert "crashed" in outcome, "the request in flight was not told that the worker died"
        with pytest.raises(WorkerCrashed) as err:
            worker.summary()
        assert "crashed" in str(err.value) or "broke" in str(err.value) or "stopped" in str(err.value)
        worker.restart()
        assert worker.summary()["num_layers"] == 2
    finally:
        worker.close()
    assert worker.proc.poll() is not None


def test_worker_exits_when_its_parent_dies(tiny_models, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from internals.worker.spawn import ManagedWorker, WorkerOptions\n"
        f"w = ManagedWorker(WorkerOptions(model={str(tiny_models('llama'))!r}))\n"
        "w.start()\n"
        "print(w.proc.pid, flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    child_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child_pid, signal.SIGKILL)
        pytest.fail("the worker was orphaned")


def test_standalone_worker_refuses_a_second_on_the_same_socket(worker):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "internals.cli", "worker", "--socket", worker.socket_path],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: a worker is already listening")
