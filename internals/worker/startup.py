"""How the explorer's worker opens its model: weights at once, torch and transformers in the background.

Importing torch and transformers takes seconds, and the statistics of a stored tensor need neither (they are
computed by numpy and numba from the memory-mapped bytes). So a worker does not import them before it
answers: `open_for_worker` opens the weight files and a structure read from config.json and the safetensors
headers (milliseconds); the weight operations (statistics, matrix previews, and with an exact headers
structure the cross-layer table) are answered from it at once. `Background` then

1. warms the statistics kernels (numba's import and its cached machine code: 0.3-1 s) in a thread started
   with the worker, so that the first statistics request finds them loaded (a weight question that comes
   sooner waits for the warm-up rather than loading them alongside it);
2. after the first weight answer (or `IMPORT_DELAY_S` after the start, when nobody asks), imports torch and
   transformers and builds the exact structure on the meta device (module classes, tied and converted
   parameters), in one background thread: the summary and the tree wait for it, as do forward passes, which
   find torch imported instead of paying the whole import themselves.

In the worker process (`freeze_gc`), what the warm-up and then the imports made is frozen out of Python's
full garbage collections (`internals.gc_freeze`): with numba loaded, each full collection walked ~100,000
objects, and a whole-model statistics pass triggers several (a third of a 28-layer `cross_layer` answer).

A model transformers refuses after the first answers ends the worker with its `error:` line, as a refusal
before the socket was served does (the explorer that drew a provisional tree reads it and exits with it).
Sources without a cheap way (a bare config, pickled weights, remote code, a model_type this transformers
does not ship, not a causal LM) are opened as before, transformers first, before anything is served.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from internals.errors import UserError
from internals.gc_freeze import freeze_long_lived
from internals.model import OpenedModel, open_model

log = logging.getLogger("llm_internals.worker")

#: With no weight request to answer first, torch is imported this long after the worker started serving
#: (the explorer asks for the exact tree at once, and draws a provisional one meanwhile; the user's first
#: statistics request usually follows within seconds, and should not share the CPU with the import).
#: LLM_INTERNALS_IMPORT_DELAY_S overrides it (tests make it long, so the first answer is what starts it).
IMPORT_DELAY_S = 5.0


def import_delay() -> float:
    return float(os.environ.get("LLM_INTERNALS_IMPORT_DELAY_S", IMPORT_DELAY_S))


def open_for_worker(spec: str | None, revision: str | None = None, trust_remote_code: bool = False
                    ) -> tuple[OpenedModel, bool]:
    """(the model to answer weight questions from now, whether transformers must still build its structure).

    The second value is False when the model was opened the usual way (transformers imported already)."""
    from internals.provisional_info import provisional_model_info, structure_from_headers
    from internals.sources import resolve_source
    from internals.structure import structure_from_names
    from internals.weights import WeightStore

    source = resolve_source(spec, revision)
    if source.config_path is None or not source.weight_files or source.pickle_files or trust_remote_code:
        return open_model(spec, revision=revision, trust_remote_code=trust_remote_code), False
    if provisional_model_info(source, trust_remote_code) is None:  # only transformers can tell: as before
        return open_model(spec, revision=revision, trust_remote_code=trust_remote_code), False
    store = WeightStore(source.weight_files)
    structure = structure_from_headers(source, store, trust_remote_code)
    tree_source = "headers"
    if structure is None:  # renamed or fused at load time: stored names answer at once, the rest waits
        structure = structure_from_names(store)
        tree_source = "provisional"
    return OpenedModel(source=source, structure=structure, store=store, trust_remote_code=trust_remote_code,
                       tree_source=tree_source), True


def exact_model(fast: OpenedModel) -> OpenedModel:
    """The model as transformers builds it (on the meta device), sharing `fast`'s files and statistics."""
    from internals.structure import build_meta_model, load_config, structure_from_model

    source = fast.source
    assert source.config_path is not None, "the fast start only opens sources with a config.json"
    config = load_config(source.config_path, fast.trust_remote_code)
    model = build_meta_model(config, fast.trust_remote_code)
    structure = structure_from_model(model, config, fast.store)
    return OpenedModel(source=source, structure=structure, store=fast.store, trust_remote_code=fast.trust_remote_code,
                       stats_cache=fast.stats_cache, tree_source="transformers")


def warm_statistics(opened: OpenedModel) -> None:
    """Import numba and load the compiled statistics kernels for the stored dtypes, so that the first real
    request pays none of it: per dtype, its smallest stored tensor (the kernels that read a file's tensors)
    and a tiny array (those that count memory already mapped)."""
    import numpy as np

    from internals.safetensors_file import TensorEntry
    from internals.stats import compute_tensor_stats, dtype_info

    store = opened.store
    if store is None:
        return
    smallest: dict[str, TensorEntry] = {}
    for entry in store:
        if entry.dtype not in smallest or entry.nbytes < smallest[entry.dtype].nbytes:
            smallest[entry.dtype] = entry
    for code in sorted(smallest):
        try:
            info = dtype_info(code)
        except UserError:
            continue
        entry = smallest[code]
        compute_tensor_stats(store.raw(entry.name), code, entry.shape, name="warm-up")
        compute_tensor_stats(np.zeros(8 * int(info.itemsize), np.uint8), code, (8,), name="warm-up")


class Background:
    """The worker's background start: statistics kernels now, torch/transformers after the first answers.

    `exact()` is the exact `OpenedModel` (waits for the build; starts it now if it had not started);
    `imported()` waits for torch and transformers. Weight questions run in `answering()`."""

    def __init__(self, fast: OpenedModel, pending: bool, delay: float | None = None,
                 on_failure: Callable[[BaseException], None] | None = None, freeze_gc: bool = False) -> None:
        self.fast = fast
        #: the worker process's own start (never a test's or a library caller's): after the warm-up and the
        #: imports, what they made is frozen out of full garbage collections (`internals.gc_freeze`)
        self.freeze_gc = freeze_gc
        self.pending = pending
        self.delay = import_delay() if delay is None else delay
        #: whether torch was imported when the first weight answer was sent (None: no answer yet)
        self.torch_at_first_answer: bool | None = None
        self.on_failure = on_failure or exit_with_error
        self._go = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self._done = threading.Event()
        self._warmed = threading.Event()  # set: no warm-up running (cleared while `start`'s runs)
        self._warmed.set()
        self._exact: OpenedModel | None = None if pending else fast
        self._error: BaseException | None = None
        self.started_at = time.monotonic()
        self.import_started_at: float | None = None

    def start(self) -> None:
        self._warmed.clear()
        threading.Thread(target=self._warm, name="warm-statistics", daemon=True).start()
        threading.Thread(target=self._run, name="import-transformers", daemon=True).start()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Around a weight question: the imports wait for it; once it is answered they may take the CPU. It
        waits for the kernels' warm-up, which it would otherwise redo alongside it (numba loads them once),
        so that it runs after the freeze of the warm-up's objects, as every later question does."""
        with self._lock:
            self._busy += 1
        try:
            self.warmed()
            yield
        finally:
            with self._lock:
                self._busy -= 1
            if self.torch_at_first_answer is None:
                self.torch_at_first_answer = "torch" in sys.modules
            self._go.set()

    def warmed(self) -> None:
        """Wait for the kernels' warm-up (it reads the weight files: their maps stay open until it ends)."""
        self._warmed.wait()

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self._error is None

    def imported(self, now: bool = True) -> None:
        """Wait for torch and transformers (with `now`, starting their import at once: a forward pass;
        else when the first answers or the delay start it: the tree); re-raise what the build raised."""
        if now:
            self._go.set()
        self._done.wait()
        if self._error is not None:
            raise self._error

    def exact(self) -> OpenedModel:
        self.imported(now=False)
        assert self._exact is not None
        return self._exact

    def _warm(self) -> None:
        try:
            warm_statistics(self.fast)
            log.info("statistics kernels warmed %.1f s after the start%s", time.monotonic() - self.started_at,
                     self._freeze())  # numba's registries: out of every later full collection
        except Exception as exc:  # noqa: BLE001 - a failed warm-up only costs the first request its time
            log.warning("statistics warm-up failed: %s", exc)
        finally:
            self._warmed.set()

    def _freeze(self) -> str:
        """Freeze what the process made so far when `freeze_gc`; the log's note of it."""
        if not self.freeze_gc:
            return ""
        freeze_long_lived()
        return f"; {gc.get_freeze_count()} objects frozen out of full garbage collections"

    def _run(self) -> None:
        self._go.wait(self.delay)
        while not self._go.is_set() and self._busy:  # a weight question in flight: let it finish first
            self._go.wait(0.02)
        self.import_started_at = time.monotonic()
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401

            from internals.inference import loading  # noqa: F401 - what the first forward pass imports

            if self.pending:
                self._exact = exact_model(self.fast)
            log.info("torch and transformers imported %.1f s after the start (begun after %.1f s)%s",
                     time.monotonic() - self.started_at, self.import_started_at - self.started_at,
                     self._freeze())  # their modules' objects too
        except BaseException as exc:  # noqa: BLE001 - reported to every waiter, and ends the worker if refused
            self._error = exc
            if isinstance(exc, UserError):
                self.on_failure(exc)
        finally:
            self._done.set()


def exit_with_error(exc: BaseException) -> None:
    """transformers refused the model after the worker started answering: end it with the `error:` line that
    a refusal before serving prints (the explorer reads it from the log and exits with it)."""
    sys.stderr.write(f"error: {exc}\n")
    sys.stderr.flush()
    logging.shutdown()
    os._exit(getattr(exc, "exit_code", 2))
