"""Eigenvalues of WᵀW (the squared singular values of W) for one stored matrix, and their histogram.

W is read from the checkpoint's memory map a block of rows (or columns) at a time (blocks sized to take about
a quarter of a second each on the machine as loaded, so progress never stalls), converted to float64,
and its smaller Gram matrix G (M×M for an N×M matrix, M ≤ N) accumulated block by block (numpy's dot(Bᵀ, B), a
BLAS symmetric rank-k update), so that memory stays at two Gram-sized matrices (the sum and one block's
update) plus one float64 block whatever the dtype and size of W. `torch.linalg.eigvalsh`
in float64 then gives the M eigenvalues, unnormalized: the same numbers as WeightWatcher's `evals`
(its `svdvals(W)**2` in float64). A 3-D tensor (experts stacked along dim 0) is one matrix per slice,
addressed as `name[e]`. A matrix may also be several stored 2-D tensors stacked along rows: one expert's slice
of a parameter fused at load time (Mixtral's `w1` over `w3` make `gate_up_proj[e]`); it is read block by
block the same way, never concatenated whole.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict, TypeVar

import numpy as np

from internals.errors import UserError
from internals.weights import WeightStore

FLOAT_CODES = {"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"}
BLOCK_FLOPS = 1e9  # float64 multiply-adds of the first block: ~0.05-0.15 s on one idle core
MAX_BLOCK_FLOPS = 2.5e9  # and at most this many, whatever the speed (bounds the float64 block's memory)
BLOCK_SECONDS = 0.25  # later blocks are resized to take about this long on the machine as it is loaded now
MIN_BLOCK = 64  # rows per block at least: thinner blocks make the float64 GEMM inefficient
HEARTBEAT_SECONDS = 0.5  # the longest silence of `progress` while a matrix is computed (plus one block's time)
MIN_REPORT_SECONDS = 0.1  # progress calls no more often than this
T = TypeVar("T")
_SLICE = re.compile(r"^(?P<stored>.+)\[(?P<index>\d+)\]$")


@dataclass(frozen=True)
class MatrixRef:
    """One matrix of the checkpoint: a 2-D stored tensor, or slice `index` of a 3-D one; with `stacked`, the
    rows of those stored 2-D tensors follow (one matrix together); `of` = (parameter, expert) when the
    matrix is that expert's slice of a parameter fused at load time (then it is named `parameter[expert]`)."""

    stored: str
    index: int | None = None
    stacked: tuple[str, ...] = ()
    of: tuple[str, int] | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        """The stored tensors the matrix is read from, its rows in this order."""
        return (self.stored, *self.stacked)

    @property
    def stored_matrix(self) -> str:
        """The stored matrix (or matrices, joined by +) the values come from: the cache's key."""
        first = self.stored if self.index is None else f"{self.stored}[{self.index}]"
        return "+".join((first, *self.stacked))

    @property
    def name(self) -> str:
        return f"{self.of[0]}[{self.of[1]}]" if self.of is not None else self.stored_matrix


class MatrixMoments(TypedDict):
    eigenvalues: np.ndarray  # ascending, float64, length min(n, m)
    n: int  # rows of the matrix as stored
    m: int  # columns
    mean: float  # of the entries
    variance: float  # of the entries (population)


def is_matrix(store: WeightStore, stored: str) -> bool:
    entry = store.entry(stored)
    return entry.dtype in FLOAT_CODES and len(entry.shape) in (2, 3) and min(entry.shape[-2:]) >= 2


def matrices_of(store: WeightStore, names: list[str], explicit: bool = False) -> list[MatrixRef]:
    """The matrices among stored `names` (3-D tensors give one per slice). With `explicit` (the user asked
    for these names), no matrix at all is an error that says why."""
    refs: list[MatrixRef] = []
    for name in names:
        if not is_matrix(store, name):
            continue
        shape = store.entry(name).shape
        if len(shape) == 3:
            refs.extend(MatrixRef(name, e) for e in range(shape[0]))
        else:
            refs.append(MatrixRef(name))
    if not refs:
        if explicit:
            e = store.entry(names[0])
            raise UserError(f"{names[0]} has shape {list(e.shape)} ({e.dtype}): spectra need a floating-point matrix "
                            "(2-D, or 3-D stacked experts); ask for a weight matrix such as '*.q_proj.weight'")
        raise UserError("this model stores no floating-point weight matrix: nothing to take a spectrum of")
    return refs


def names_stored(store: WeightStore, name: str) -> bool:
    """Whether `name` is a stored tensor or a slice `stored[e]` of one (else it may be a parameter name)."""
    match = _SLICE.match(name)
    return name in store or bool(match and match["stored"] in store)


def parse_ref(store: WeightStore, name: str) -> MatrixRef:
    """`stored` or `stored[e]` -> MatrixRef, checked against the store."""
    match = _SLICE.match(name)
    ref = MatrixRef(match["stored"], int(match["index"])) if match and match["stored"] in store else MatrixRef(name)
    if ref.stored not in store:
        raise UserError(f"no stored tensor named {name!r}: `llm-internals stats MODEL --json` lists them")
    shape = store.entry(ref.stored).shape
    if not is_matrix(store, ref.stored):
        matrices_of(store, [ref.stored], explicit=True)  # raises the explanation
    if len(shape) == 3 and ref.index is None:
        raise UserError(f"{name} stacks {shape[0]} matrices: ask for one slice, e.g. {name}[0]")
    if len(shape) == 2 and ref.index is not None:
        raise UserError(f"{ref.stored} is a single matrix: ask for it without [{ref.index}]")
    if ref.index is not None and ref.index >= shape[0]:
        raise UserError(f"{ref.stored} has {shape[0]} slices: {ref.index} is out of range")
    return ref


def matrix_eigenvalues(store: WeightStore, ref: MatrixRef, check: Callable[[], None] | None = None,
                       progress: Callable[[float], None] | None = None) -> MatrixMoments:
    """Eigenvalues of the smaller Gram matrix of one matrix, in float64, plus its entries' mean and variance.

    `progress(fraction)` is called at least every `HEARTBEAT_SECONDS` or so: after each Gram block (blocks are
    resized as they go so that one takes about `BLOCK_SECONDS`, whatever the load of the machine) and, during
    the eigen-solve, from a heartbeat thread; `check()` is called between blocks and before and after the
    solve (a cancellation waits for the solve: about a second for M = 1536)."""
    import torch

    first = store.tensor(ref.stored)
    parts = [first if ref.index is None else first[ref.index], *(store.tensor(s) for s in ref.stacked)]
    if any(p.dim() != 2 or p.shape[1] != parts[0].shape[1] for p in parts):
        raise UserError(f"{ref.name}: the stored tensors {', '.join(ref.parts)} do not stack into one matrix "
                        f"(shapes {[list(p.shape) for p in parts]})")
    n, m = sum(int(p.shape[0]) for p in parts), int(parts[0].shape[1])
    tall = n >= m
    small, big = (m, n) if tall else (n, m)
    step = min(big, max(MIN_BLOCK, int(BLOCK_FLOPS // max(small * small, 1))))
    max_step = max(MIN_BLOCK, int(MAX_BLOCK_FLOPS // max(small * small, 1)))
    gram = np.zeros((small, small), dtype=np.float64)
    total = 0.0
    beat = _Heartbeat(progress, check)
    with torch.no_grad():
        lo = 0
        while lo < big:
            beat.check()
            started = time.monotonic()
            block = _block(parts, lo, lo + step, tall)
            total += float(block.sum())
            # numpy turns dot(Bᵀ, B) into a symmetric rank-k update (BLAS syrk): half the work of a product
            gram += np.dot(block.T, block) if tall else np.dot(block, block.T)
            del block
            lo += step
            beat.report(0.8 * min(lo, big) / big)
            step = min(max_step, _next_step(step, time.monotonic() - started))
        beat.check()
        sum_sq = float(np.trace(gram))
        evals = beat.beat_while(lambda: torch.linalg.eigvalsh(torch.from_numpy(gram)).numpy(), 0.8, 0.9)
        beat.check()
        beat.report(0.9, force=True)
    count = n * m
    mean = total / count
    return MatrixMoments(eigenvalues=np.clip(evals, 0.0, None), n=n, m=m, mean=mean,
                         variance=max(sum_sq / count - mean * mean, 0.0))


def _block(parts: list, lo: int, hi: int, rows: bool) -> np.ndarray:
    """Rows [lo, hi) (or, with rows=False, columns [lo, hi)) of the matrix the `parts` make stacked along rows,
    in float64."""
    import torch

    if not rows:
        pieces = [p[:, lo:hi] for p in parts]
    else:
        pieces, start = [], 0
        for p in parts:
            end = start + int(p.shape[0])
            if lo < end and hi > start:
                pieces.append(p[max(lo - start, 0):hi - start])
            start = end
    if len(pieces) == 1:
        return pieces[0].to(torch.float64).numpy()
    return torch.cat([p.to(torch.float64) for p in pieces]).numpy()


def _next_step(step: int, seconds: float) -> int:
    """Rows of the next Gram block: aim at `BLOCK_SECONDS` a block (at most doubling, at least `MIN_BLOCK`)."""
    if seconds <= 0:
        return step * 2
    return max(MIN_BLOCK, min(2 * step, int(step * BLOCK_SECONDS / seconds)))


class _Heartbeat:
    """Progress reports at least every `HEARTBEAT_SECONDS` (and no more often than every `MIN_REPORT_SECONDS`),
    with the cancellation check between steps; `beat_while` keeps reporting through one long step."""

    def __init__(self, progress: Callable[[float], None] | None, check: Callable[[], None] | None) -> None:
        self.progress, self._check = progress, check
        self.last = time.monotonic()

    def check(self) -> None:
        if self._check is not None:
            self._check()

    def report(self, fraction: float, force: bool = False) -> None:
        if self.progress is not None and (force or time.monotonic() - self.last >= MIN_REPORT_SECONDS):
            self.progress(fraction)
            self.last = time.monotonic()

    def beat_while(self, work: Callable[[], T], start: float, end: float) -> T:
        """`work()` (one long step, e.g. the eigen-solve) here, while a helper thread keeps reporting progress
        from `start` creeping towards `end` every `HEARTBEAT_SECONDS / 2`. The work stays on the calling thread
        so its large buffers come from the same allocator arena as the Gram matrix (a solve in another thread
        raised the peak memory above the design bound); the caller checks for cancellation right after it."""
        if self.progress is None:
            return work()
        stop = threading.Event()

        def beat() -> None:
            waited = 0.0
            while not stop.wait(HEARTBEAT_SECONDS / 2):
                waited += HEARTBEAT_SECONDS / 2
                self.report(start + (end - start) * (1 - 1 / (1 + waited)), force=True)

        helper = threading.Thread(target=beat, name="spectrum-heartbeat", daemon=True)
        helper.start()
        try:
            return work()
        finally:
            stop.set()
            helper.join()


def esd_histogram(eigenvalues: np.ndarray, bins: int = 48) -> dict[str, list]:
    """Counts of the positive eigenvalues in `bins` equal bins of log10(λ) (zeros are left out)."""
    positive = eigenvalues[eigenvalues > 0]
    if not len(positive):
        return {"log10_edges": [], "counts": []}
    logs = np.log10(positive)
    lo, hi = float(logs.min()), float(logs.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(logs, bins=bins, range=(lo, hi))
    return {"log10_edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
