"""The worker process: serves one `ModelService` on a private Unix socket to any number of clients.

Each connection gets a reader thread; each request runs in its own thread (the service serialises forward
passes), so cheap questions (tree, statistics) are answered while a long forward pass runs. The socket is
created with mode 0600 inside a 0700 folder: only its user can connect (`socket_group` opens it to one Unix
group, 0660 in a 0750 folder, for a class whose students have their own accounts).

A careless or hostile peer costs one connection, never the worker: requests are read with small limits
(checked before anything past the frame prefix is read, and memory grows only with bytes that arrive), the
number of connections and of requests in flight per connection is bounded, and an answer too large for a
frame goes back as a typed error instead of a broken connection.
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

from internals.errors import (
    AnswerTooLarge,
    BadRequest,
    Busy,
    InternalError,
    UserError,
    to_wire,
)
from internals.worker.protocol import (
    MAX_HEADER,
    MAX_PAYLOAD,
    MAX_REQUEST_HEADER,
    MAX_REQUEST_PAYLOAD,
    ConnectionClosed,
    ProtocolError,
    encode,
    read_frame,
)
from internals.worker.service import ModelService, RuntimeOptions

log = logging.getLogger("llm_internals.worker")
#: At most this many connections are served at once; more wait in the listen backlog, then are refused.
MAX_CONNECTIONS = 128
#: Requests of one connection running at once; a peer that sends more gets a typed error for the extra ones.
MAX_IN_FLIGHT = 32


class WorkerServer:
    def __init__(self, service: ModelService | None, path: str | os.PathLike[str], socket_group: str | None = None) -> None:
        self.service = service
        self.path = str(path)
        self.socket_group = socket_group
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def bind(self) -> None:
        gid = _group_id(self.socket_group) if self.socket_group else None
        parent = Path(self.path).parent
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True)
            if gid is not None:
                os.chown(parent, -1, gid)
                os.chmod(parent, 0o750)
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
        if gid is not None:
            os.chown(self.path, -1, gid)
            os.chmod(self.path, 0o660)
        else:
            os.chmod(self.path, 0o600)
        sock.listen(64)
        self._sock = sock

    def serve_forever(self) -> None:
        assert self._sock is not None and self.service is not None, "bind() and set the service first"
        log.info("listening on %s (pid %d)", self.path, os.getpid())
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue  # every slot taken: accept nobody until a connection closes (they wait in the backlog)
            try:
                conn, _ = self._sock.accept()
            except OSError:
                self._slots.release()
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
        assert self.service is not None
        service = self.service
        send_lock = threading.Lock()
        client_id = id(conn)
        in_flight = [0]  # requests of this connection still running
        settled = threading.Condition()
        gone = threading.Event()
        cancel = getattr(service, "cancel_client", None)

        def peer_gone() -> None:
            """The peer cannot read answers any more: cancel its requests (they stop at their next step)."""
            if not gone.is_set():
                gone.set()
                if cancel is not None:
                    cancel(client_id)

        def send(header: dict[str, Any], body: Any) -> None:
            frame = _fitting_frame(header, body)
            with send_lock:
                if gone.is_set():
                    return
                try:
                    conn.sendall(frame)
                except OSError:
                    failed = True
                else:
                    failed = False
            if failed:
                peer_gone()

        def run(header: dict[str, Any], params: Any) -> None:
            try:
                service.handle(header, params, send)
            finally:
                with settled:
                    in_flight[0] -= 1
                    settled.notify_all()

        clean_end = False
        try:
            while not gone.is_set():
                header, params = read_frame(conn, MAX_REQUEST_HEADER, MAX_REQUEST_PAYLOAD)
                if header.get("kind") != "request":
                    continue
                rid = header.get("id")
                if not isinstance(rid, int) or isinstance(rid, bool):
                    send({"id": 0, "kind": "error"}, to_wire(BadRequest("a request needs an integer id")))
                    continue
                with settled:
                    busy = in_flight[0] >= MAX_IN_FLIGHT
                    if not busy:
                        in_flight[0] += 1
                if busy:
                    send({"id": rid, "kind": "error"}, to_wire(Busy(
                        f"more than {MAX_IN_FLIGHT} requests in flight on one connection: wait for answers first")))
                    continue
                header["client"] = client_id
                threading.Thread(target=run, args=(header, params if params is not None else {}), daemon=True).start()
        except ConnectionClosed:
            clean_end = True
        except OSError:
            pass
        except ProtocolError as exc:
            log.warning("dropping a client that sent a bad frame: %s", exc)
        finally:
            if clean_end:
                # The peer stopped sending: it closed, or only shut its sending side and still reads the answers
                # in flight. Answer them; a closed peer makes the next send fail, which cancels the rest.
                with settled:
                    while in_flight[0] > 0 and not gone.is_set() and not self._stopping.is_set():
                        settled.wait(0.2)
            peer_gone()
            conn.close()
            self._slots.release()


def _fitting_frame(header: dict[str, Any], body: Any) -> bytes:
    """The frame for an answer, or a typed error frame when the answer is too large for the client to read
    (the client would otherwise see a broken connection and think the worker died)."""
    try:
        frame = encode(header, body)
    except (TypeError, ValueError) as exc:  # not JSON-able: a bug in an operation, reported to the client
        log.error("answer of request %s could not be encoded: %s", header.get("id"), exc)
        return encode({"id": header.get("id"), "kind": "error"},
                      to_wire(InternalError(f"the answer could not be encoded: {exc}")))
    hlen, plen = int.from_bytes(frame[:4], "little"), int.from_bytes(frame[4:12], "little")
    if hlen > MAX_HEADER or plen > MAX_PAYLOAD:
        size = (hlen + plen) / 2**20
        return encode({"id": header.get("id"), "kind": "error"},
                      to_wire(AnswerTooLarge(f"the answer is too large to send ({size:.0f} MiB): "
                                             "ask for fewer tokens or a shorter prompt")))
    return frame


def _group_id(name: str) -> int:
    import grp

    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        raise UserError(f"no Unix group named {name!r}: create it, or leave out --socket-group") from None
    if gid not in os.getgroups() and gid != os.getgid():
        raise UserError(f"you are not in the group {name!r}: the socket could not be handed to it")
    return gid


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
    """`llm-internals worker [MODEL] --socket PATH`.

    The model is opened the cheap way (`internals.worker.startup`): weight questions are answered as soon as
    the socket is served; torch and transformers are imported in the background after the first answers."""
    from internals.worker.startup import Background, exit_with_error, open_for_worker

    handler: logging.Handler = logging.FileHandler(args.log) if getattr(args, "log", None) else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("llm_internals").addHandler(handler)
    logging.getLogger("llm_internals").setLevel(logging.INFO)
    server = WorkerServer(None, args.socket, socket_group=getattr(args, "socket_group", None))
    server.bind()  # first: a socket already in use is reported before seconds of model opening
    sides = None
    try:
        if getattr(args, "base", None):
            from internals.diff import open_compared

            opened, sides = open_compared(args.model, args.base, trust_remote_code=args.trust_remote_code)
            pending = False  # opened the usual way (transformers imported): no background build
        else:
            opened, pending = open_for_worker(args.model, revision=args.revision,
                                              trust_remote_code=args.trust_remote_code)
    except BaseException:
        server.stop()
        raise

    def refused(exc: BaseException) -> None:  # transformers refused the model after the first answers
        server.stop()
        exit_with_error(exc)

    background = Background(opened, pending, on_failure=refused, freeze_gc=True)
    service = ModelService(opened, RuntimeOptions(device=args.device, dtype=args.dtype, max_memory=args.max_memory),
                           exit_on_broken_device=True, background=background)
    service.diff_sides = sides
    server.service = service
    background.start()
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
