"""The one client interface the explorer (and the CLI) use to talk to a model, and its two implementations.

`ExplorerClient` has one typed method per request. `SocketClient` sends them to a worker process over a
Unix socket; `InProcessClient` runs them on a `ModelService` in this process (tests, `--no-worker`). Both
pass every message through the same wire codec, so they return identical data. Torch-free.
"""

from __future__ import annotations

import itertools
import queue
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from internals.diff.types import BehaviourDiff, RankInfo, TensorDiff, WeightDiff
from internals.errors import Cancelled, ModelRefused, UserError, WorkerCrashed, from_wire
from internals.worker.contract import (
    ActivationsResult,
    ActivationStats,
    Attention,
    AttributionResult,
    CrossLayer,
    DemoPoint,
    ExpertSpectra,
    FusedStats,
    GeneratedToken,
    Lens,
    MatrixPreview,
    ModelSpectra,
    ModelSummary,
    Neighbours,
    NextTokens,
    PatchingResult,
    ResidualNorms,
    RouterSummary,
    Routing,
    Status,
    TensorSpectrum,
    TensorStats,
    Tokens,
    TokenTracks,
    TreeNode,
)
from internals.worker.protocol import ConnectionClosed, ProtocolError, decode, encode, read_frame

if TYPE_CHECKING:
    from internals.worker.operations import Operation

Progress = Callable[[float, str], None]
Req = TypeVar("Req")
Res = TypeVar("Res")

#: Every error the worker sends is a `UserError` subclass of internals/errors.py (`BadRequest`, `OutOfMemory`,
#: `InternalError`...); `RemoteError` is its old name here.
RemoteError = UserError
_DEFAULT_GROUP: Any = object()

__all__ = ["Cancelled", "ExplorerClient", "InProcessClient", "ModelRefused", "Progress", "RemoteError",
           "SocketClient", "WorkerCrashed"]


class ExplorerClient:
    """Typed requests. Subclasses implement `_request`, which yields the response frames of one request."""

    # --- transport (subclasses) ---------------------------------------------------------------------
    def _request(self, method: str, params: dict[str, Any], group: str | None) -> Iterator[tuple[dict, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection (and the worker, when this client owns it)."""

    # --- generic call, driven by the operation registry ---------------------------------------------
    @overload
    def call(self, op: Operation[Req, Res], request: Mapping[str, Any] | None = None, *, group: str | None = ...,
             on_progress: Progress | None = None) -> Res: ...

    @overload
    def call(self, op: str, request: Mapping[str, Any] | None = None, *, group: str | None = ...,
             on_progress: Progress | None = None) -> Any: ...

    def call(self, op, request=None, *, group=_DEFAULT_GROUP, on_progress=None):
        """The result of operation `op` (its name or its registry entry) on `request` (its parameters).

        `group` defaults to the operation's registered cancellation group; errors are raised as their own
        classes (internals/errors.py). A streaming operation's items are dropped here: use `stream`.
        """
        method, group = _resolve(op, group)
        for header, body in self._request(method, dict(request or {}), group):
            kind = header.get("kind")
            if kind == "progress":
                if on_progress:
                    on_progress(float(body.get("fraction", 0.0)), str(body.get("message", "")))
            elif kind == "response":
                return body
            elif kind == "error":
                raise from_wire(body)
        raise WorkerCrashed("the worker closed the request without an answer")

    def stream(self, op, request: Mapping[str, Any] | None = None, *, group: Any = _DEFAULT_GROUP,
               on_progress: Progress | None = None, final: bool = False) -> Iterator[Any]:
        """The streamed items of a request; with `final`, the response itself comes last as {"result": ...}."""
        method, group = _resolve(op, group)
        for header, body in self._request(method, dict(request or {}), group):
            kind = header.get("kind")
            if kind == "item":
                yield body
            elif kind == "progress":
                if on_progress:
                    on_progress(float(body.get("fraction", 0.0)), str(body.get("message", "")))
            elif kind == "response":
                if final:
                    yield {"result": body}
                return
            elif kind == "error":
                raise from_wire(body)

    # --- typed requests (internals/worker/contract.py says what each returns) ------------------------
    def status(self) -> Status:
        return self.call("status", group=None)

    def summary(self) -> ModelSummary:
        return self.call("summary")

    def tree(self) -> list[TreeNode]:
        return self.call("tree")

    def tensor_stats(self, name: str, bins: int = 64, clip: bool = False, group: str | None = "tensor") -> TensorStats:
        return self.call("tensor_stats", {"name": name, "bins": bins, "clip": clip}, group=group)

    def matrix_preview(self, name: str, rows: int = 64, cols: int = 128, group: str | None = "matrix") -> MatrixPreview:
        return self.call("matrix_preview", {"name": name, "rows": rows, "cols": cols}, group=group)

    def cross_layer(self, on_progress: Progress | None = None, group: str | None = "cross-layer") -> CrossLayer:
        return self.call("cross_layer", {}, group=group, on_progress=on_progress)

    # --- diff against a base (an explorer opened with --base; internals/worker/ops/diff.py) ---------------
    def diff_summary(self, bins: int = 64, on_progress: Progress | None = None, group: str | None = "diff") -> WeightDiff:
        return self.call("diff_summary", {"bins": bins}, group=group, on_progress=on_progress)

    def diff_tensor(self, name: str, bins: int = 64, group: str | None = "diff-tensor") -> TensorDiff:
        return self.call("diff_tensor", {"name": name, "bins": bins}, group=group)

    def diff_rank(self, name: str, group: str | None = "diff-rank") -> RankInfo:
        return self.call("diff_rank", {"name": name}, group=group)

    def diff_behaviour(self, prompt: str, top: int = 10, on_progress: Progress | None = None,
                       group: str | None = "diff-behaviour") -> BehaviourDiff:
        return self.call("diff_behaviour", {"prompt": prompt, "top": top}, group=group, on_progress=on_progress)

    def spectrum(self, name: str, on_progress: Progress | None = None, group: str | None = "spectrum") -> TensorSpectrum:
        return self.call("spectrum", {"name": name}, group=group, on_progress=on_progress)

    def spectra(self, on_progress: Progress | None = None, group: str | None = "spectra") -> ModelSpectra:
        return self.call("spectra", {}, group=group, on_progress=on_progress)

    def load(self, on_progress: Progress | None = None) -> Status:
        return self.call("load", {}, group="load", on_progress=on_progress)

    def tokenize(self, text: str, group: str | None = "tokens", on_progress: Progress | None = None) -> Tokens:
        return self.call("tokenize", {"text": text}, group=group, on_progress=on_progress)

    def attention(self, prompt: str, layer: int, bins: int | None = None, group: str | None = "attention",
                  on_progress: Progress | None = None) -> Attention:
        return self.call("attention", {"prompt": prompt, "layer": layer, "bins": bins}, group=group, on_progress=on_progress)

    def lens(self, prompt: str, top_k: int = 5, group: str | None = "lens", on_progress: Progress | None = None) -> Lens:
        return self.call("lens", {"prompt": prompt, "top_k": top_k}, group=group, on_progress=on_progress)

    def residual_norms(self, prompt: str, group: str | None = "residual") -> ResidualNorms:
        return self.call("residual_norms", {"prompt": prompt}, group=group)

    def activation_stats(self, prompt: str, group: str | None = "activations") -> ActivationStats:
        return self.call("activation_stats", {"prompt": prompt}, group=group)

    def next_tokens(self, prompt: str, k: int = 10, group: str | None = "next") -> NextTokens:
        return self.call("next_tokens", {"prompt": prompt, "k": k}, group=group)

    def generate(self, prompt: str, max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0,
                 group: str | None = "generate", on_progress: Progress | None = None) -> Iterator[GeneratedToken]:
        return self.stream("generate", {"prompt": prompt, "max_new_tokens": max_new_tokens,
                                        "temperature": temperature, "seed": seed}, group=group, on_progress=on_progress)

    def neighbours(self, token_id: int, k: int = 10, group: str | None = "neighbours") -> Neighbours:
        return self.call("neighbours", {"token_id": token_id, "k": k}, group=group)

    def chat_template(self, messages: list[dict[str, Any]] | None = None, add_generation_prompt: bool = True,
                      group: str | None = "chat-template") -> Any:
        """The model's chat template rendered for `messages` (the op's default conversation when None), with its
        tokens (`internals.inference.chat_template.ChatRendering`)."""
        request: dict[str, Any] = {"add_generation_prompt": add_generation_prompt}
        if messages is not None:
            request["messages"] = messages
        return self.call("chat_template", request, group=group)

    def expert_stats(self, name: str, bins: int = 64, group: str | None = "tensor",
                     on_progress: Progress | None = None) -> FusedStats:
        return self.call("expert_stats", {"name": name, "bins": bins}, group=group, on_progress=on_progress)

    def expert_spectra(self, name: str, group: str | None = "expert_spectra",
                       on_progress: Progress | None = None) -> ExpertSpectra:
        return self.call("expert_spectra", {"name": name}, group=group, on_progress=on_progress)

    def router_summary(self, name: str, group: str | None = "router") -> RouterSummary:
        return self.call("router_summary", {"name": name}, group=group)

    def experts(self, prompt: str, group: str | None = "experts", on_progress: Progress | None = None) -> Routing:
        return self.call("experts", {"prompt": prompt}, group=group, on_progress=on_progress)

    def activations(self, prompt: str, ratio: float = 1000.0, min_value: float = 100.0,
                    group: str | None = "residual-activations", on_progress: Progress | None = None) -> ActivationsResult:
        return self.call("activations", {"prompt": prompt, "ratio": ratio, "min_value": min_value}, group=group,
                         on_progress=on_progress)

    def patch(self, clean: str, corrupt: str, target: str | None = None, grids: list[str] | None = None,
              batch_size: int | None = None, group: str | None = "patch",
              on_progress: Progress | None = None) -> PatchingResult:
        return self.call("patch", {"clean": clean, "corrupt": corrupt, "target": target, "grids": grids,
                                   "batch_size": batch_size}, group=group, on_progress=on_progress)

    def attribute(self, prompt: str, target: str | None = None, group: str | None = "attribute",
                  on_progress: Progress | None = None) -> AttributionResult:
        return self.call("attribute", {"prompt": prompt, "target": target}, group=group, on_progress=on_progress)

    def lens_tracks(self, prompt: str, tokens: list[str], position: int = -1, group: str | None = "lens-tracks",
                    on_progress: Progress | None = None) -> TokenTracks:
        return self.call("lens_tracks", {"prompt": prompt, "tokens": list(tokens), "position": position},
                         group=group, on_progress=on_progress)

    def cancel(self, group: str) -> None:
        """Cancel this client's running request of `group` (its caller gets `Cancelled`)."""
        self.call("cancel", group=group)

    def run_demo(self, name: str, params: dict[str, Any] | None = None, on_progress: Progress | None = None,
                 group: str | None = "demo") -> Iterator[DemoPoint | dict[str, Any]]:
        """Streamed points ({"series", "x", "y"}), then {"result": the demo's result}."""
        return self.stream("run_demo", {"name": name, "params": params or {}}, group=group, on_progress=on_progress,
                           final=True)


def _resolve(op: Any, group: Any) -> tuple[str, str | None]:
    """(method name, cancellation group): the registered group unless the caller gave one (None: no group)."""
    if isinstance(op, str):
        method = op
        if group is _DEFAULT_GROUP:
            from internals.worker.operations import registry

            entry = registry().get(op)
            group = entry.group if entry is not None else None
    else:
        method = op.name
        if group is _DEFAULT_GROUP:
            group = op.group
    return method, group


class SocketClient(ExplorerClient):
    """Talks to a worker over its Unix socket. Thread-safe: requests from several threads interleave."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as exc:
            self._sock.close()
            raise WorkerCrashed(f"cannot connect to the worker at {path}: {exc.strerror or exc}") from None
        self._sock.settimeout(None)
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._inbox: dict[int, queue.Queue] = {}
        self._inbox_lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name="llm-internals-client", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        try:
            while True:
                header, body = read_frame(self._sock)
                with self._inbox_lock:
                    box = self._inbox.get(int(header.get("id", -1)))
                if box is not None:
                    box.put((header, body))
        except (ConnectionClosed, ProtocolError, OSError):
            pass
        finally:
            self._closed = True
            with self._inbox_lock:
                for box in self._inbox.values():
                    box.put(None)

    def _request(self, method: str, params: dict[str, Any], group: str | None) -> Iterator[tuple[dict, Any]]:
        if self._closed:
            raise WorkerCrashed("the worker connection is closed")
        rid = next(self._ids)
        box: queue.Queue = queue.Queue()
        with self._inbox_lock:
            self._inbox[rid] = box
        try:
            frame = encode({"id": rid, "kind": "request", "method": method, "group": group}, params)
            try:
                with self._send_lock:
                    self._sock.sendall(frame)
            except OSError:
                raise WorkerCrashed("the worker is gone (connection broken)") from None
            while True:
                item = box.get()
                if item is None:
                    raise WorkerCrashed("the worker stopped while answering (see its log)")
                yield item
                if item[0].get("kind") in ("response", "error"):
                    return
        finally:
            with self._inbox_lock:
                self._inbox.pop(rid, None)

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


class InProcessClient(ExplorerClient):
    """Runs requests on a `ModelService` in this process, through the same codec as the socket."""

    def __init__(self, service) -> None:
        self.service = service

    def _request(self, method: str, params: dict[str, Any], group: str | None) -> Iterator[tuple[dict, Any]]:
        frames: queue.Queue = queue.Queue()

        def send(header: dict, body: Any) -> None:
            frame = encode(header, body)
            hlen = int.from_bytes(frame[:4], "little")
            frames.put(decode(frame[12 : 12 + hlen], frame[12 + hlen :]))

        def run() -> None:
            try:
                self.service.handle({"id": 0, "method": method, "group": group, "client": id(self)}, params, send)
            finally:
                frames.put(None)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            while True:
                item = frames.get()
                if item is None:
                    return
                yield item
                if item[0].get("kind") in ("response", "error"):
                    return
        finally:
            thread.join()  # never leave a request thread running (e.g. inside torch) when the caller is done

    def close(self) -> None:
        self.service.close()
