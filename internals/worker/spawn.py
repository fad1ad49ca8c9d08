"""Start and own a worker process for one explorer (the default), and reconnect to it after a crash.

The worker is a fresh Python (`subprocess.Popen`, never `fork`: CUDA must not be forked), in its own
session, with stdin detached and its output in a log file, so it never competes with Textual for the
terminal. It watches our pid and exits when we are gone; `close()` stops it. Torch-free.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from internals.errors import ModelRefused
from internals.worker.client import ExplorerClient, SocketClient, WorkerCrashed


@dataclass
class WorkerOptions:
    model: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    device: str | None = None
    dtype: str | None = None
    max_memory: str | None = None
    base: str | None = None  # `--base`: the worker compares its model with this one (internals/worker/ops/diff.py)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: The module run as `python -m MODULE worker ...`: the composition root (`llm_internals`) registers the
    #: lessons' demos in the worker; the engine's own `internals.cli` serves a worker without demos.
    entry_module: str = "internals.cli"


def _runtime_dir() -> Path:
    from internals.worker.runtime_dir import private_runtime_dir

    return private_runtime_dir()


class ManagedWorker(ExplorerClient):
    """A client that owns its worker process: starts it, reports a crash, restarts it on demand."""

    def __init__(self, options: WorkerOptions, start_timeout: float = 120.0) -> None:
        self.options = options
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.client: SocketClient | None = None
        folder = _runtime_dir()
        token = secrets.token_hex(4)
        self.socket_path = str(folder / f"worker-{os.getpid()}-{token}.sock")
        self.log_path = str(folder / f"worker-{os.getpid()}-{token}.log")
        self.crashed: str | None = None
        self._refused = False  # the crash was a refusal of the model (raised as ModelRefused again)
        self._ready_lock = threading.Lock()
        self._started_at = 0.0

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> None:
        """Launch the worker; with `wait`, return once it answers (else the first request waits for it)."""
        o = self.options
        cmd = [sys.executable, "-m", o.entry_module, "worker"]
        if o.model:
            cmd.append(o.model)
        cmd += ["--socket", self.socket_path, "--log", self.log_path, "--parent-pid", str(os.getpid())]
        for flag, value in (("--revision", o.revision), ("--device", o.device), ("--dtype", o.dtype),
                            ("--max-memory", o.max_memory), ("--base", o.base)):
            if value:
                cmd += [flag, value]
        if o.trust_remote_code:
            cmd.append("--trust-remote-code")
        env = {**os.environ, **o.extra_env}
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, env=env, close_fds=True)
        finally:
            log.close()
        self.crashed = None
        self._refused = False
        self._started_at = time.monotonic()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Block until the worker accepts connections; raise `WorkerCrashed` if it died or timed out."""
        with self._ready_lock:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if self.client is not None:
            return
        if self.proc is None:
            raise (ModelRefused if self._refused and self.crashed else WorkerCrashed)(
                self.crashed or "the worker is not running: press r to restart it")
        deadline = self._started_at + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                self._raise_exit(f"the worker exited with status {self.proc.returncode}")
            if os.path.exists(self.socket_path):
                try:
                    client = SocketClient(self.socket_path)
                except WorkerCrashed:
                    client = None
                if client is not None:
                    try:
                        client.call("ping")  # answered once the model is open (the socket comes first)
                    except WorkerCrashed:
                        client.close()
                        try:
                            self.proc.wait(timeout=5)
                        except subprocess.TimeoutExpired:
                            pass
                        self._raise_exit("the worker stopped while opening the model")
                    self.client = client
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise WorkerCrashed(f"the worker did not start within {self.start_timeout:.0f} s (log: {self.log_path})")
            time.sleep(0.05)

    def _raise_exit(self, fallback: str) -> None:
        """The worker ended before answering: `ModelRefused` with its one-line reason when it refused the model
        (the command line's `error:` line, the only place that line is read), else `WorkerCrashed`."""
        refusal = self.refusal()
        self.crashed = refusal or self.log_tail() or fallback
        self._refused = bool(refusal)
        if refusal:
            raise ModelRefused(refusal) from None
        raise WorkerCrashed(self.crashed) from None

    def refusal(self) -> str | None:
        """The reason the worker gave for refusing to start (its last `error:` line), without the prefix."""
        try:
            text = Path(self.log_path).read_text(errors="replace").strip().splitlines()
        except OSError:
            return None
        errors = [t for t in text if t.startswith("error:")]
        return errors[-1][len("error:"):].strip() if errors else None

    def log_tail(self, lines: int = 1) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        errors = [t for t in text if t.startswith("error:")]
        return (errors[-1] if errors else "\n".join(text[-lines:])).strip()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.client is not None and not self.client._closed

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass

    def close(self) -> None:
        self.stop()

    # --- requests -----------------------------------------------------------------------------------
    def _request(self, method: str, params: dict[str, Any], group: str | None) -> Iterator[tuple[dict, Any]]:
        if self.client is None:
            if self.crashed is not None:
                raise (ModelRefused if self._refused else WorkerCrashed)(self.crashed)
            self.wait_ready()
        client = self.client
        if client is None:  # wait_ready raises unless the worker is up
            raise WorkerCrashed(self.crashed or "the worker is not running")
        try:
            yield from client._request(method, params, group)
        except WorkerCrashed:
            code = None
            if self.proc is not None:
                try:  # a worker that refuses the model late (its background start) closes, then exits
                    code = self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    code = None
            refusal = self.refusal() if code is not None else None
            if refusal:  # transformers refused the model after the first answers: its one error line
                self.crashed, self._refused = refusal, True
                raise ModelRefused(refusal) from None
            self.crashed = f"the worker crashed (exit status {code})" if code is not None else "the worker connection broke"
            raise WorkerCrashed(self.crashed) from None
