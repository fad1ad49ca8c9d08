"""`ModelService`: everything the explorer can ask of a model, behind one `handle()` entry point.

Weight questions (tree, facts, statistics, matrix previews) are answered by the lazy engine and never load
the model. Forward-pass questions (tokens, attention, logit lens, generation, neighbours, demos) load it
once, on first need, with progress. Forward passes run one at a time (one model, one device); a newer
request of the same client and group cancels the older one; errors go back typed.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from internals.errors import UserError
from internals.model import OpenedModel
from internals.structure import LAYER_COMPONENTS

log = logging.getLogger("llm_internals.worker")
Send = Callable[[dict, Any], None]
CROSS_LAYER_METRICS = ("std", "rms", "kurtosis", "abs_mean", "max_abs")


class CancelledError(Exception):
    pass


@dataclass
class RequestContext:
    """What an operation may use: progress reports, a cancellation flag, and streaming of items."""

    rid: int
    send: Send
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def check(self) -> None:
        if self.cancel.is_set():
            raise CancelledError()

    def progress(self, fraction: float, message: str = "") -> None:
        self.send({"id": self.rid, "kind": "progress"}, {"fraction": float(fraction), "message": message})

    def emit(self, item: Any) -> None:
        self.check()
        self.send({"id": self.rid, "kind": "item"}, item)


@dataclass
class RuntimeOptions:
    device: str | None = None
    dtype: str | None = None
    max_memory: str | None = None


class ModelService:
    """Owns one opened model (and, once needed, its loaded transformers model)."""

    def __init__(self, opened: OpenedModel, options: RuntimeOptions | None = None) -> None:
        self.opened = opened
        self.options = options or RuntimeOptions()
        self._loaded = None
        self._load_lock = threading.Lock()
        self._compute_lock = threading.Lock()
        self._active: dict[tuple[Any, str], RequestContext] = {}
        self._active_lock = threading.Lock()
        self.started = time.time()
        self._info_saved = False

    # --- dispatch -----------------------------------------------------------------------------------
    def handle(self, header: dict[str, Any], params: dict[str, Any], send: Send) -> None:
        """Run one request; every outcome is sent as frames (response, item, progress or error)."""
        rid = int(header.get("id", 0))
        method = str(header.get("method", ""))
        ctx = RequestContext(rid, send)
        key = (header.get("client"), header.get("group")) if header.get("group") else None
        if key is not None:
            with self._active_lock:
                older = self._active.get(key)
                if older is not None:
                    older.cancel.set()
                self._active[key] = ctx
        try:
            op = getattr(self, f"op_{method}", None)
            if op is None:
                raise UserError(f"unknown request {method!r}")
            if not isinstance(params, dict):
                raise UserError("request parameters must be an object")
            try:
                inspect.signature(op).bind(ctx, **params)
            except TypeError as exc:
                raise UserError(f"bad parameters for {method}: {exc}") from None
            result = op(ctx, **params)
            ctx.check()
            send({"id": rid, "kind": "response"}, result)
        except CancelledError:
            send({"id": rid, "kind": "error"}, {"type": "Cancelled", "message": "cancelled by a newer request"})
        except UserError as exc:
            send({"id": rid, "kind": "error"}, {"type": type(exc).__name__, "message": str(exc)})
        except MemoryError:
            send({"id": rid, "kind": "error"}, {"type": "OutOfMemory", "message": "out of memory: try a shorter prompt or a smaller --dtype"})
        except Exception as exc:  # noqa: BLE001 - a bug in one request must not kill the worker
            oom = _as_oom(exc)
            if oom:
                send({"id": rid, "kind": "error"}, {"type": "OutOfMemory", "message": oom})
            else:
                self._internal_error(rid, method, exc, send)
        finally:
            if key is not None:
                with self._active_lock:
                    if self._active.get(key) is ctx:
                        del self._active[key]

    def _internal_error(self, rid: int, method: str, exc: BaseException, send: Send) -> None:
        log.error("request %s failed:\n%s", method, "".join(traceback.format_exception(exc)))
        send({"id": rid, "kind": "error"}, {"type": "InternalError", "message": f"{method} failed: {type(exc).__name__}: {exc}"})

    def close(self) -> None:
        self.opened.close()

    # --- status and the lazy engine -----------------------------------------------------------------
    def op_ping(self, ctx: RequestContext) -> dict[str, Any]:
        return {"pong": True, "pid": os.getpid()}

    def op_status(self, ctx: RequestContext) -> dict[str, Any]:
        import psutil

        loaded = self._loaded
        status: dict[str, Any] = {
            "model": self.opened.source.display_name, "pid": os.getpid(), "loaded": loaded is not None,
            "device": str(loaded.device) if loaded else (self.options.device or "auto"),
            "dtype": str(loaded.dtype).replace("torch.", "") if loaded else (self.options.dtype or "auto"),
            "rss_bytes": psutil.Process().memory_info().rss, "uptime_s": time.time() - self.started,
        }
        if loaded is not None and str(loaded.device).startswith("cuda"):
            import torch

            status["gpu_allocated_bytes"] = int(torch.cuda.memory_allocated())
            status["gpu_total_bytes"] = int(torch.cuda.get_device_properties(0).total_memory)
        return status

    def op_summary(self, ctx: RequestContext) -> dict[str, Any]:
        return self.opened.summary()

    def op_tree(self, ctx: RequestContext) -> list[dict[str, Any]]:
        tree = self.opened.tree()
        if not self._info_saved:  # lets the next explorer on this model draw its tree before the worker is up
            from internals.info_cache import save_model_info

            save_model_info(self.opened.source, self.opened.summary(), tree)
            self._info_saved = True
        return tree

    def op_tensor_stats(self, ctx: RequestContext, name: str, bins: int = 64, clip: bool = False) -> dict[str, Any]:
        return self.opened.tensor_stats(name, bins=bins, clip=clip)  # one read: clip derives from the counts

    def op_matrix_preview(self, ctx: RequestContext, name: str, rows: int = 64, cols: int = 128) -> dict[str, Any]:
        """A weight matrix reduced to at most rows×cols blocks: the mean |x| of each block (exact blocks)."""
        from internals.matrix_preview import matrix_preview
        from internals.weights import require_weights

        store = require_weights(self.opened.store, "a matrix preview")
        return matrix_preview(store, self.opened.stored_name_of(name), rows, cols, ctx.check, name=name)

    def op_cross_layer(self, ctx: RequestContext) -> dict[str, Any]:
        """Per component kind (q, k, v, o, gate, up, down, ...) and layer: std, RMS, kurtosis... of the weights."""
        from internals.aggregates import aggregate

        # Weights only; a parameter fused at load time (MoE experts) counts as the group of its stored tensors.
        params = [p for p in self.opened.structure.unique_params
                  if p.layer is not None and p.component in LAYER_COMPONENTS and p.stored and not p.name.endswith("bias")]
        num_layers = self.opened.summary()["num_layers"] or 0
        stored = [name for p in params for name in p.stored]
        stats = []
        for i, name in enumerate(stored):
            ctx.check()
            ctx.progress(i / max(1, len(stored)), name)
            stats.append(self.opened.stats_cache.stats(self.opened.store, name, bins=64, save=False))
        self.opened.stats_cache.flush(self.opened.store, 64)
        cells = aggregate(self.opened.structure, stats, num_layers)["by_component_and_layer"]
        comps = [c for c in LAYER_COMPONENTS if c in cells]
        names: dict[str, list[str | None]] = {c: [None] * num_layers for c in comps}
        for p in params:
            if names[p.component][p.layer] is None:
                names[p.component][p.layer] = p.name
        metrics: dict[str, dict[str, list]] = {m: {} for m in CROSS_LAYER_METRICS}
        for c in comps:
            for m in CROSS_LAYER_METRICS:
                metrics[m][c] = [_metric(cell, m) for cell in cells[c]]
        return {"num_layers": num_layers, "components": comps, "metrics": metrics, "names": names}

    # --- forward passes -----------------------------------------------------------------------------
    def loaded(self, ctx: RequestContext | None = None):
        """The transformers model, loaded once (with progress sent to the first requester)."""
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    from internals.inference.loading import load_for_inference

                    report = (lambda f, m: ctx.progress(f, m)) if ctx else None
                    self._loaded = load_for_inference(
                        self.opened.source, device=self.options.device, dtype=self.options.dtype,
                        max_memory=self.options.max_memory, trust_remote_code=self.opened.trust_remote_code,
                        progress=report)
        return self._loaded

    def op_load(self, ctx: RequestContext) -> dict[str, Any]:
        self.loaded(ctx)
        return self.op_status(ctx)

    def op_tokenize(self, ctx: RequestContext, text: str) -> dict[str, Any]:
        from internals.inference.tokens import tokenize

        return tokenize(self.loaded(ctx).tokenizer, text)

    def op_attention(self, ctx: RequestContext, prompt: str, layer: int = 0, bins: int | None = None) -> dict[str, Any]:
        from internals.inference.attention import attention_for_layer
        from internals.inference.tokens import tokenize

        loaded = self.loaded(ctx)
        toks = tokenize(loaded.tokenizer, prompt)
        with self._compute_lock:
            ctx.check()
            result = attention_for_layer(loaded, toks["ids"], layer, bins=bins)
        result.update({"tokens": toks["labels"], "token_ids": toks["ids"]})
        return result

    def op_lens(self, ctx: RequestContext, prompt: str, top_k: int = 5) -> dict[str, Any]:
        from internals.inference.lens import logit_lens
        from internals.inference.tokens import tokenize

        loaded = self.loaded(ctx)
        toks = tokenize(loaded.tokenizer, prompt)
        with self._compute_lock:
            ctx.check()
            result = logit_lens(loaded, toks["ids"], top_k)
        for entry in result["layers"]:
            entry["top_tokens"] = entry.pop("top_labels")
        result.update({"tokens": toks["labels"], "token_ids": toks["ids"]})
        return result

    def op_residual_norms(self, ctx: RequestContext, prompt: str) -> dict[str, Any]:
        from internals.inference.lens import residual_norms
        from internals.inference.tokens import tokenize

        loaded = self.loaded(ctx)
        toks = tokenize(loaded.tokenizer, prompt)
        with self._compute_lock:
            norms = residual_norms(loaded, toks["ids"])
        return {"tokens": toks["pieces"], "token_ids": toks["ids"], "norms": np.asarray(norms, dtype=np.float32)}

    def op_activation_stats(self, ctx: RequestContext, prompt: str) -> dict[str, Any]:
        from internals.inference.lens import activation_stats
        from internals.inference.tokens import tokenize

        loaded = self.loaded(ctx)
        toks = tokenize(loaded.tokenizer, prompt)
        with self._compute_lock:
            modules = activation_stats(loaded, toks["ids"])
        return {"tokens": toks["pieces"], "modules": modules}

    def op_next_tokens(self, ctx: RequestContext, prompt: str, k: int = 10) -> dict[str, Any]:
        from internals.inference.generation import next_token_topk
        from internals.inference.tokens import tokenize

        loaded = self.loaded(ctx)
        toks = tokenize(loaded.tokenizer, prompt)
        with self._compute_lock:
            return next_token_topk(loaded, toks["ids"], k)

    def op_generate(self, ctx: RequestContext, prompt: str, max_new_tokens: int = 32, temperature: float = 0.0,
                    seed: int = 0) -> dict[str, Any]:
        from internals.inference.generation import generate_stream
        from internals.inference.tokens import tokenize

        loaded = self.loaded(ctx)
        toks = tokenize(loaded.tokenizer, prompt)
        count = 0
        with self._compute_lock:
            for item in generate_stream(loaded, toks["ids"], max_new_tokens, temperature=temperature, seed=seed,
                                        should_stop=lambda: ctx.cancelled):
                ctx.emit(item)
                count += 1
        return {"generated": count}

    def op_neighbours(self, ctx: RequestContext, token_id: int, k: int = 10) -> dict[str, Any]:
        from internals.inference.neighbours import embedding_neighbours

        loaded = self.loaded(ctx)
        with self._compute_lock:
            return embedding_neighbours(loaded, int(token_id), int(k))

    def op_run_demo(self, ctx: RequestContext, name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from lessons.demos import run_demo

        with self._compute_lock:
            result = run_demo(name, self.opened, params or {}, emit=ctx.emit, progress=ctx.progress,
                              should_stop=lambda: ctx.cancelled)
        return result or {}


def _metric(cell: dict[str, Any] | None, metric: str) -> float | None:
    if cell is None:
        return None
    if metric == "max_abs":
        return None if cell["min"] is None else max(abs(cell["min"]), abs(cell["max"]))
    return cell.get(metric)


def _as_oom(exc: BaseException) -> str | None:
    text = str(exc).lower()
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text:
        return "out of GPU memory: try a shorter prompt or --dtype bfloat16"
    return None
