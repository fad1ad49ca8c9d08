"""`ModelService`: everything the explorer can ask of a model, behind one `handle()` entry point.

The service owns the model and its state (the lazy `OpenedModel`; the transformers model, loaded once on
first need; the compute lock; the active request of each cancellation group). What each request does is a
registered operation (internals/worker/operations.py, the operations themselves in internals/worker/ops/):
`handle` finds it, lets the registry check and run it, and sends every outcome as frames. A newer request of
the same client and group cancels the older one, and a client that disconnects cancels all of its requests
(`cancel_client`); every error goes back typed (internals/errors.py). An accelerator failure that leaves the
CUDA context broken is answered as `DeviceFailed`, then a worker process exits (`exit_on_broken_device`), so
that the explorer offers a restart instead of failing every later request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from internals.errors import Cancelled, DeviceFailed, InternalError, UserError, to_wire
from internals.model import OpenedModel
from internals.worker.fair_lock import FairLock
from internals.worker.operations import OpContext, Send, dispatch, get_operation

if TYPE_CHECKING:
    from internals.inference.loading import Loaded

log = logging.getLogger("llm_internals.worker")

#: Exit status of a worker that stopped after a broken accelerator context (the explorer restarts it).
BROKEN_DEVICE_EXIT = 70

#: Kept for callers of the old name: the context every operation receives.
RequestContext = OpContext
CancelledError = Cancelled


@dataclass
class RuntimeOptions:
    device: str | None = None
    dtype: str | None = None
    max_memory: str | None = None


class ModelService:
    """Owns one opened model (and, once needed, its loaded transformers model)."""

    def __init__(self, opened: OpenedModel, options: RuntimeOptions | None = None,
                 exit_on_broken_device: bool = False, background=None) -> None:
        """`background`: the worker's `internals.worker.startup.Background` when `opened` was opened the cheap
        way (weights at once; torch, transformers and the exact structure later); None: `opened` is exact."""
        self._fast = opened
        self.background = background
        self.options = options or RuntimeOptions()
        self.loaded_model: Loaded | None = None
        self._load_lock = threading.Lock()
        self.compute_lock = FairLock()
        self._active: dict[tuple[Any, str], OpContext] = {}
        self._by_client: dict[Any, dict[int, OpContext]] = {}  # client -> {id(ctx): ctx}
        self._active_lock = threading.Lock()
        #: A worker process exits after answering a `DeviceFailed` (an in-process service only answers it).
        self.exit_on_broken_device = exit_on_broken_device
        self.started = time.time()
        self.info_saved = False
        #: `internals.diff.DiffSides` when the explorer compares its model with a base (`--base`); else None.
        self.diff_sides = None

    # --- the opened model -----------------------------------------------------------------------------
    @property
    def opened(self) -> OpenedModel:
        """The exact `OpenedModel` (with a background start: waits until transformers has built it)."""
        return self._fast if self.background is None else self.background.exact()

    @property
    def source(self):
        """The model's `ModelSource` (known at once, also during a background start)."""
        return self._fast.source

    def opened_for(self, name: str | None = None) -> OpenedModel:
        """The model to answer a weight question about `name` (None: about the whole structure) now:
        the one opened from the headers when it knows the answer (the stored tensor `name`, or any name
        when its structure is already exact), else the exact one (which may wait for transformers)."""
        bg = self.background
        if bg is None or bg.ready:
            return self.opened
        fast = self._fast
        if fast.tree_source == "headers" and (name is None or name in fast.structure.params):
            return fast
        if name is not None and fast.store is not None and name in fast.store:
            return fast
        bg.imported(now=True)  # a question only transformers' structure answers: build it now
        return self.opened

    def weight_question(self):
        """Context of a weight question: a background start imports torch after it, not during it."""
        if self.background is None:
            return nullcontext()
        return self.background.answering()

    # --- dispatch -----------------------------------------------------------------------------------
    def handle(self, header: dict[str, Any], params: Any, send: Send) -> None:
        """Run one request; every outcome is sent as frames (response, item, progress or error)."""
        rid = int(header.get("id", 0))
        method = str(header.get("method", ""))
        ctx = OpContext(rid, send, self)
        client = header.get("client")
        group = header.get("group")
        key = (client, str(group)) if group else None
        with self._active_lock:
            if key is not None:
                older = self._active.get(key)
                if older is not None:
                    older.cancel.set()
                self._active[key] = ctx
            self._by_client.setdefault(client, {})[id(ctx)] = ctx
        try:
            result = dispatch(get_operation(method), ctx, params)
            send({"id": rid, "kind": "response"}, result)
        except (Cancelled, UserError) as exc:
            send({"id": rid, "kind": "error"}, to_wire(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in one request must not kill the worker
            from internals.inference.errors import is_broken_device

            if is_broken_device(exc):
                self._device_failed(method, rid, exc, send)
            else:
                log.error("request %s failed:\n%s", method, "".join(traceback.format_exception(exc)))
                send({"id": rid, "kind": "error"},
                     to_wire(InternalError(f"{method} failed: {type(exc).__name__}: {exc}")))
        finally:
            with self._active_lock:
                if key is not None and self._active.get(key) is ctx:
                    del self._active[key]
                mine = self._by_client.get(client)
                if mine is not None:
                    mine.pop(id(ctx), None)
                    if not mine:
                        del self._by_client[client]

    def cancel_client(self, client_id: Any) -> int:
        """Cancel every request of a client whose connection closed (they stop at their next step, so the
        compute lock is free again within one step); returns how many were running."""
        with self._active_lock:
            running = list(self._by_client.get(client_id, {}).values())
        for ctx in running:
            ctx.cancel.set()
        if running:
            log.info("client %s disconnected: cancelled %d request(s)", client_id, len(running))
        return len(running)

    def active_requests(self, client_id: Any = None) -> int:
        """How many requests run now (of one client, or of all)."""
        with self._active_lock:
            if client_id is not None:
                return len(self._by_client.get(client_id, ()))
            return sum(len(v) for v in self._by_client.values())

    def _device_failed(self, method: str, rid: int, exc: BaseException, send: Send) -> None:
        """A CUDA error that breaks the context: answer it typed, then (a worker process) exit so that the
        explorer's restart gives a fresh context; every later request would fail the same way."""
        log.error("request %s hit an accelerator error that leaves the device unusable:\n%s", method,
                  "".join(traceback.format_exception(exc)))
        send({"id": rid, "kind": "error"}, to_wire(DeviceFailed(
            f"the GPU failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}): "
            "the worker stops; restart it (r in the explorer)")))
        if self.exit_on_broken_device:
            log.critical("worker exiting with status %d after an unrecoverable accelerator error in %s "
                         "(restart the worker)", BROKEN_DEVICE_EXIT, method)
            logging.shutdown()
            os._exit(BROKEN_DEVICE_EXIT)

    def close(self) -> None:
        """Release the model: its loaded copy (and accelerate's offload folder) and the opened files."""
        if self.loaded_model is not None:
            self.loaded_model.close()
            self.loaded_model = None
        if self.background is not None:
            self.background.warmed()  # the warm-up reads the files' maps: closing them under it would crash
        self._fast.close()  # the exact model shares its files
        if self.diff_sides is not None:
            self.diff_sides.close()

    # --- the loaded model ---------------------------------------------------------------------------
    def loaded(self, ctx: OpContext | None = None):
        """The transformers model, loaded once (with progress sent to the first requester)."""
        if self.loaded_model is None:
            with self._load_lock:
                if self.loaded_model is None:
                    if self.background is not None:
                        self.background.imported()  # one import of torch, in the background thread
                    from internals.inference.loading import load_for_inference

                    report = (lambda f, m: ctx.progress(f, m)) if ctx else None
                    self.loaded_model = load_for_inference(
                        self.opened.source, device=self.options.device, dtype=self.options.dtype,
                        max_memory=self.options.max_memory, trust_remote_code=self.opened.trust_remote_code,
                        progress=report)
                    leave_a_core_for_cuda(self.loaded_model)
        return self.loaded_model


def leave_a_core_for_cuda(loaded: Any) -> None:
    """With the model on a GPU, statistics use one thread fewer than the CPUs, so the thread that launches
    the CUDA kernels of a forward pass is never starved by a whole-model statistics pass."""
    if str(getattr(loaded, "device", "cpu")).startswith("cuda"):
        from internals.stats import set_threads, threads

        set_threads(max(1, threads() - 1))
