"""The worker process: serves one `ModelService` on a private Unix socket to any number of clients.

Each connection gets a reader thread; each request runs in its own thread (the service serialises forward
passes), so cheap questions (tree, statistics) are answered while a long forward pass runs. The socket is
created with mode 0600 inside a 0700 folder: only its user can connect.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import stat
import sys
import threading
from pathlib import Path
from typing import Any

from internals.errors import UserError
from internals.worker.protocol import ConnectionClosed, ProtocolError, encode, read_frame
from internals.worker.service import ModelService, RuntimeOptions

log = logging.getLogger("llm_internals.worker")


class WorkerServer:
    def __init__(self, service: ModelService | None, path: str | os.PathLike[str]) -> None:
        self.service = service
        self.path = str(path)
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()

    def bind(self) -> None:
        parent = Path(self.path).parent
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True)
        if os.path.lexists(self.path):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise UserError(f"{self.path} exists and is not a socket: choose another --socket path")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                raise UserError(f"a worker is already listening on {self.path}: connect to it with --connect {self.path}")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(self.path)  # a stale socket of a dead worker
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        except OSError as exc:
            sock.close()
            raise UserError(f"cannot create the socket {self.path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(16)
        self._sock = sock

    def serve_forever(self) -> None:
        assert self._sock is not None and self.service is not None, "bind() and set the service first"
        log.info("listening on %s (pid %d)", self.path, os.getpid())
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                break
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _serve_connection(self, conn: socket.socket) -> None:
        send_lock = threading.Lock()
        client_id = id(conn)

        def send(header: dict[str, Any], body: Any) -> None:
            frame = encode(header, body)
            with send_lock:
                try:
                    conn.sendall(frame)
                except OSError:
                    pass  # the client went away; its requests finish silently

        try:
            while True:
                header, params = read_frame(conn)
                if header.get("kind") != "request":
                    continue
                header["client"] = client_id
                threading.Thread(target=self.service.handle, args=(header, params or {}, send), daemon=True).start()
        except (ConnectionClosed, OSError):
            pass
        except ProtocolError as exc:
            log.warning("dropping a client that sent a bad frame: %s", exc)
        finally:
            conn.close()


def _watch_parent(pid: int, server: WorkerServer) -> None:
    """Exit when the explorer that started us is gone, so no worker is ever orphaned."""
    import time

    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.info("parent %d is gone: exiting", pid)
            server.stop()
            os._exit(0)
        except PermissionError:
            pass


def serve_from_args(args: argparse.Namespace) -> int:
    """`llm-internals worker [MODEL] --socket PATH`."""
    from internals.model import open_model

    handler: logging.Handler = logging.FileHandler(args.log) if getattr(args, "log", None) else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("llm_internals").addHandler(handler)
    logging.getLogger("llm_internals").setLevel(logging.INFO)
    server = WorkerServer(None, args.socket)
    server.bind()  # first: a socket already in use is reported before seconds of model opening
    try:
        opened = open_model(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
    except BaseException:
        server.stop()
        raise
    service = ModelService(opened, RuntimeOptions(device=args.device, dtype=args.dtype, max_memory=args.max_memory))
    server.service = service
    parent = getattr(args, "parent_pid", None)
    if parent:
        threading.Thread(target=_watch_parent, args=(int(parent), server), daemon=True).start()

    def on_signal(signum, frame):  # noqa: ARG001
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not getattr(args, "log", None):
        print(f"llm-internals worker: serving {opened.source.display_name} on {args.socket} (Ctrl-C stops)", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.stop()
        service.close()
    return 0
