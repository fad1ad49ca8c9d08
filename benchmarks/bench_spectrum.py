"""Benchmark: spectra of every weight matrix of a 1.5B-shaped checkpoint against a same-run matrix baseline.

    python -m benchmarks.bench_spectrum              # full DeepSeek-R1-Distill-Qwen-1.5B shapes (~3.5 GB bf16)
    python -m benchmarks.bench_spectrum --layers 2   # quick run (the embedding and LM head dominate)
    nice -n 5 python benchmarks/bench_spectrum.py    # the machine is shared: be nice

Reported (JSON to stdout and benchmarks/out/spectrum.json):
- spectrum pass: seconds for `compute_spectrum` of every matrix (block-wise float64 Gram, eigvalsh, power-law
  fit, MP edge), in total and per matrix;
- baseline, per matrix, measured right after it in the same run: one float32 product WᵀW of the same shape
  (W already in float32, conversion not timed) plus the eigen-solve of an M×M symmetric matrix (float32 and,
  for information, float64); the ratio ours / baseline (target <= 3);
- progress: the longest gap between two progress calls (target <= 1 s);
- memory: peak RssAnon above the baseline while one matrix is computed, against the design bound for the
  largest one: two float64 M×M Gram-sized matrices (the sum and a block's update, or eigvalsh's copy), the
  LAPACK eigen-solver's workspace (2·M² doubles) and one float64 block;
- cache: seconds for `iter_spectra` over the whole model from the on-disk cache in a fresh memory (target <= 0.2 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

BASELINE_RATIO_TARGET = 3.0
PROGRESS_GAP_TARGET = 1.0
CACHE_SECONDS_TARGET = 0.2


log = common.logger("bench_spectrum")


def baseline_seconds(store, ref) -> dict[str, float]:
    """One float32 WᵀW of the matrix's shape (smaller Gram) and the M×M eigen-solves."""
    import torch

    w = store.tensor(ref.stored)
    w = (w[ref.index] if ref.index is not None else w).to(torch.float32)
    tall = w.shape[0] >= w.shape[1]
    t0 = time.perf_counter()
    gram = w.T @ w if tall else w @ w.T
    product = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.linalg.eigvalsh(gram)
    eig32 = time.perf_counter() - t0
    g64 = gram.double()
    t0 = time.perf_counter()
    torch.linalg.eigvalsh(g64)
    eig64 = time.perf_counter() - t0
    return {"product_f32": product, "eigvalsh_f32": eig32, "eigvalsh_f64": eig64}


def run(args: argparse.Namespace) -> dict:
    import torch

    from internals.spectrum import cache, compute_spectrum, iter_spectra, matrices_of
    from internals.weights import WeightStore

    layers = None if args.layers is None or args.layers >= common.REFERENCE_LAYERS else args.layers
    path, generated, gen_seconds = common.synthetic_checkpoint(common.REFERENCE_CONFIG, layers, Path(args.cache_dir), log=log)
    store = WeightStore([path])
    refs = matrices_of(store, store.names())
    log(f"{path.name}: {len(refs)} matrices, {len(store)} tensors, torch threads {torch.get_num_threads()}")
    for e in store:  # warm the page cache
        store.raw(e.name).sum()

    gaps: list[float] = []
    last = [time.perf_counter()]

    def progress(_fraction: float) -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    per_matrix, results = [], []
    peak_extra, peak_report = 0, None
    for ref in refs:  # ours, then its baseline right away: load from other users hits both alike
        with common.RssAnonSampler(0.01) as sampler:
            last[0] = t0 = time.perf_counter()
            s = compute_spectrum(store, ref, progress=progress)
            ours = time.perf_counter() - t0
            gaps.append(time.perf_counter() - last[0])  # from the last progress call to the end of the matrix
        if sampler.extra >= peak_extra:
            peak_extra, peak_report = sampler.extra, sampler.report()
        results.append(s)
        rec = {"name": ref.name, "shape": s["shape"], "seconds": ours}
        base = baseline_seconds(store, ref)
        rec.update(base)
        rec["baseline_seconds"] = base["product_f32"] + base["eigvalsh_f32"]
        rec["ratio"] = rec["seconds"] / rec["baseline_seconds"]
        rec["ratio_vs_f64_eigensolve"] = rec["seconds"] / (base["product_f32"] + base["eigvalsh_f64"])
        per_matrix.append(rec)
        log(f"{ref.name}: {ours:.2f} s, baseline {rec['baseline_seconds']:.2f} s")
    total = sum(r["seconds"] for r in per_matrix)
    base_total = sum(r["baseline_seconds"] for r in per_matrix)
    ratio = total / base_total
    m_big = max(min(r["shape"]) for r in per_matrix)
    from internals.spectrum.esd import MAX_BLOCK_FLOPS, MIN_BLOCK

    rows = max(MIN_BLOCK, int(MAX_BLOCK_FLOPS // (m_big * m_big)))  # the largest block the sizing allows
    # the Gram sum, one block's update (or eigvalsh's copy), LAPACK syevd's workspace (2·M² doubles), one block
    bound = 4 * m_big * m_big * 8 + rows * m_big * 8

    # cache: write the spectra just computed to the on-disk cache, then read them back in a fresh memory
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLM_INTERNALS_CACHE"] = tmp
        cache.clear_memory()
        for ref, s in zip(refs, results):
            cache.remember(store, ref.stored, ref.name, dict(s), save=False)
        cache.flush(store)
        cache.clear_memory()
        t0 = time.perf_counter()
        again = list(iter_spectra(store, [r.name for r in refs]))
        cache_seconds = time.perf_counter() - t0
        assert len(again) == len(refs)
    worst = sorted(per_matrix, key=lambda r: -r["ratio"])[:3]
    return {
        "benchmark": "spectrum",
        "what": "eigenvalues of WᵀW (float64 Gram + eigvalsh), norms, ranks, power-law fit, MP edge of every matrix",
        "checkpoint": {"path": str(path), "config": common.REFERENCE_CONFIG.name, "layers": layers or common.REFERENCE_LAYERS,
                       "matrices": len(refs), "generated_now": generated, "generation_seconds": gen_seconds,
                       "values": "synthetic normal(0, 0.02) with outliers, bf16, seed 0"},
        "machine": common.machine(), "torch_threads": torch.get_num_threads(),
        "note": "the machine's 2 cores are shared with other jobs: absolute seconds are noisy, ratios less so",
        "spectrum_seconds": total, "seconds_per_matrix": total / len(refs),
        "baseline_seconds": base_total,
        "baseline": "float32 WᵀW of the same shape (pre-converted) + float32 eigvalsh of the M×M Gram, same run",
        "ratio_to_baseline": ratio,
        "ratio_to_baseline_with_f64_eigensolve": total / sum(r["product_f32"] + r["eigvalsh_f64"] for r in per_matrix),
        "worst_matrices": worst,
        "per_matrix": per_matrix if args.per_matrix else None,
        "max_progress_gap_seconds": max(gaps),
        "memory": {**(peak_report or {}), "design_bound_bytes": bound, "largest_gram_side": m_big},
        "cache_read_seconds": cache_seconds,
        "targets": {
            "ratio_to_baseline": common.target(ratio, BASELINE_RATIO_TARGET, "<="),
            "max_progress_gap_seconds": common.target(max(gaps), PROGRESS_GAP_TARGET, "<="),
            "peak_extra_bytes_vs_design_bound": common.target(peak_extra / bound, 1.0, "<="),
            "cache_read_seconds": common.target(cache_seconds, CACHE_SECONDS_TARGET, "<="),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=None, help="decoder layers of the synthetic checkpoint (default all 28)")
    p.add_argument("--cache-dir", default=str(common.DEFAULT_CACHE), help="where the synthetic checkpoint is kept")
    p.add_argument("--per-matrix", action="store_true", help="include every matrix's timings in the report")
    args = p.parse_args(argv)
    common.write_report(run(args), "spectrum")
    return 0


if __name__ == "__main__":
    sys.exit(main())
