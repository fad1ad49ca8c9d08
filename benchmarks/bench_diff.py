"""Benchmark: weight diff of two 1.5B-shaped checkpoints versus reading both at memory bandwidth; ranks.

    python -m benchmarks.bench_diff              # full DeepSeek-R1-Distill-Qwen-1.5B shapes (2 x ~3.5 GB bf16)
    python -m benchmarks.bench_diff --layers 2   # quick run (what `python -m benchmarks --quick` runs)

BASE is the synthetic bf16 checkpoint of `benchmarks.common.synthetic_checkpoint`; TUNED is a perturbed copy
written once next to it (every tensor + normal noise of std 1e-3, and a rank-8 change added to each 2-D
tensor), both under benchmarks/.cache/ (gitignored). Reported (JSON to stdout and benchmarks/out/diff.json):

- weight diff: seconds for `diff_weights` over every tensor (no cache, page cache warm), against a numpy
  reduction over the bytes of both files in the same run (interleaved), and the ratio (target <= 3x); also
  the process CPU seconds of each run (both worker threads), which a shared machine disturbs less. On a busy
  machine (load average above the cores) the ratio is refused (null, with the reason), as bench_stats does;
- the two passes: the same diff with the one read of two BF16 tensors (`internals.diff.one_pass`) turned
  off (its size threshold raised), interleaved with the runs above: seconds, CPU seconds, CPU ns per pair
  of values (both threads' CPU time over the pairs) and the speed-up of the one read (`--no-two-passes`
  skips it);
- page cache: both checkpoints are dropped from the page cache and read back from disk first, as bench_stats
  does (`--page-cache as-found` skips it); the report gives how much of each the kernel maps with 2 MiB
  entries;
- memory: peak RssAnon of the process during the diff minus the baseline, as a fraction of ONE checkpoint
  (target < 10%);
- rank: `--rank` on every 2-D change (Gram eigen-solve: float32 block products summed in float64 for large
  matrices, `internals.diff.rank`): seconds per matrix and in total, and the second, cached request
  (target < 0.2 s).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

BANDWIDTH_RATIO_TARGET = 3.0
PEAK_ANON_FRACTION_TARGET = 0.10
CACHED_SECONDS_TARGET = 0.2
PLANTED_RANK = 8


log = common.logger("bench_diff")


def perturbed_copy(base: Path, seed: int = 1) -> tuple[Path, bool, float]:
    """TUNED: BASE + noise (std 1e-3) + a rank-8 change on each 2-D tensor, bf16; reused when present."""
    import torch

    path = base.with_name(base.name.replace(".safetensors", f"-tuned-s{seed}.safetensors"))
    if path.exists() and path.stat().st_size == base.stat().st_size:
        return path, False, 0.0
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    raw = {name: (shape, view) for name, _, shape, view in common.tensor_bytes(base)}
    piece_rows = 4096

    def fill(name: str, shape: tuple[int, ...], f) -> None:
        shape_, view = raw[name]
        src = torch.from_numpy(view.view("int16")).view(torch.bfloat16).reshape(shape_)
        rows = shape_[0] if len(shape_) else 1
        if len(shape_) == 2:
            u = torch.randn(shape_[0], PLANTED_RANK, generator=gen) * 0.01
            v = torch.randn(PLANTED_RANK, shape_[1], generator=gen) * 0.01
        for lo in range(0, rows, piece_rows):
            block = src[lo:lo + piece_rows].float() if len(shape_) else src.float()
            block = block + torch.randn(block.shape, generator=gen) * 1e-3
            if len(shape_) == 2:
                block += u[lo:lo + piece_rows] @ v
            f.write(block.to(torch.bfloat16).view(torch.int16).numpy().tobytes())
            if not len(shape_):
                break

    tmp = path.with_suffix(".tmp")
    log(f"writing the perturbed copy {path}")
    common.write_safetensors(tmp, [(name, "BF16", tuple(shape)) for name, (shape, _) in raw.items()], fill)
    os.replace(tmp, path)
    return path, True, time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict:
    from internals.diff import diff_weights, open_sides

    layers = None if args.layers is None or args.layers >= common.REFERENCE_LAYERS else args.layers
    base, generated, gen_seconds = common.synthetic_checkpoint(common.REFERENCE_CONFIG, layers, Path(args.cache_dir), log=log)
    tuned, tuned_generated, tuned_seconds = perturbed_copy(base)
    page_cache = common.prepare_page_cache({"base": base, "tuned": tuned}, args.page_cache, log)
    arrays = [t[3] for t in common.tensor_bytes(base)] + [t[3] for t in common.tensor_bytes(tuned)]
    one_checkpoint = int(sum(a.size for a in arrays) // 2)
    log(f"{base.name} and its perturbed copy: {one_checkpoint / 1e9:.2f} GB each")
    common.measure_bandwidth(arrays, repeats=1)  # warm the page cache and page tables

    sides = open_sides(str(base), str(tuned))
    try:
        diff_weights(sides, pattern="model.norm.weight", use_cache=False)  # imports, first-call costs
        diff_weights(sides, pattern="*.layers.0.self_attn.k_proj.weight", use_cache=False)  # the one read's
        bandwidth_runs, diff_runs, diff_cpu, two_runs, two_cpu = [], [], [], [], []
        sampler = common.RssAnonSampler(0.01)
        result = None
        for rep in range(args.repeats):
            bandwidth_runs.append(common.measure_bandwidth(arrays, repeats=1)["seconds"])
            t1, c1 = time.perf_counter(), time.process_time()
            if rep == 0:
                with sampler:
                    result = diff_weights(sides, use_cache=False, bins=args.bins)
            else:
                diff_weights(sides, use_cache=False, bins=args.bins)
            diff_runs.append(time.perf_counter() - t1)
            diff_cpu.append(time.process_time() - c1)
            if args.two_passes:
                with two_passes_only():
                    t1, c1 = time.perf_counter(), time.process_time()
                    diff_weights(sides, use_cache=False, bins=args.bins)
                    two_runs.append(time.perf_counter() - t1)
                    two_cpu.append(time.process_time() - c1)
            log(f"run {rep + 1}: diff {diff_runs[-1]:.2f} s, bandwidth {bandwidth_runs[-1]:.2f} s"
                + (f", two passes {two_runs[-1]:.2f} s" if two_runs else ""))
        diff_seconds, bw_seconds = min(diff_runs), min(bandwidth_runs)

        # ranks of every 2-D change, timed one matrix at a time (writes the cache), then the cached request
        from internals.diff.rank import tensor_rank

        pairs = [p for p in sides.match().pairs if len(p.shape) == 2]
        per_matrix = []
        t_rank = time.perf_counter()
        for p in pairs:
            t1 = time.perf_counter()
            info = tensor_rank(p, sides.base.store, sides.tuned_store)
            per_matrix.append({"name": p.name, "shape": list(p.shape), "seconds": time.perf_counter() - t1,
                               "effective_rank_99": info["effective_rank_99"], "stable_rank": info["stable_rank"]})
        rank_seconds = time.perf_counter() - t_rank
        diff_weights(sides, rank=True, bins=args.bins)  # fills the on-disk cache (weights and ranks)
        cached = []
        for _ in range(3):
            t1 = time.perf_counter()
            diff_weights(sides, rank=True, bins=args.bins)
            cached.append(time.perf_counter() - t1)
    finally:
        sides.close()
    busy = common.busy_reason()
    pairs = one_checkpoint // 2  # bf16 values per checkpoint
    ratio = diff_seconds / bw_seconds
    peak_fraction = sampler.extra / one_checkpoint
    assert result is not None
    changed = sum(1 for t in result["tensors"] if t["delta_norm"] > 0)
    slowest = sorted(per_matrix, key=lambda m: -m["seconds"])[:5]
    return {
        "benchmark": "diff",
        "what": "exact weight diff (‖ΔW‖, relative change, cosine, max|ΔW|, histogram) of every tensor of two "
                "checkpoints; singular values of every 2-D ΔW",
        "checkpoints": {
            "base": str(base), "tuned": str(tuned), "config": common.REFERENCE_CONFIG.name,
            "layers": layers or common.REFERENCE_LAYERS,
            "tensors": len(result["tensors"]), "bytes_each": one_checkpoint, "dtype": "bfloat16",
            "tuned_values": f"base + normal(0, 1e-3) + rank-{PLANTED_RANK} change on 2-D tensors",
            "generated_this_run": generated or tuned_generated,
            "generation_seconds": (gen_seconds if generated else 0.0) + (tuned_seconds if tuned_generated else 0.0),
        },
        "machine": common.machine(),
        "page_cache": page_cache,
        "torch_threads": __import__("torch").get_num_threads(),
        "changed_tensors": changed,
        "weight_diff": {"seconds": diff_seconds, "seconds_runs": diff_runs, "cpu_seconds_runs": diff_cpu,
                        "seconds_median": statistics.median(diff_runs),
                        "cpu_ns_per_pair": min(diff_cpu) / pairs * 1e9,
                        "bytes_per_s_both_files": 2 * one_checkpoint / diff_seconds},
        "two_passes": {"seconds": min(two_runs), "seconds_runs": two_runs, "cpu_seconds_runs": two_cpu,
                       "cpu_ns_per_pair": min(two_cpu) / pairs * 1e9,
                       "ratio_to_bandwidth": min(two_runs) / bw_seconds,
                       "speedup_of_one_read": min(two_runs) / diff_seconds,
                       "cpu_speedup_of_one_read": min(two_cpu) / min(diff_cpu),
                       "note": "the same diff with internals.diff.one_pass off, interleaved with the runs"}
        if two_runs else None,
        "bandwidth": {"seconds": bw_seconds, "seconds_runs": bandwidth_runs,
                      "bytes_per_s": 2 * one_checkpoint / bw_seconds,
                      "note": "numpy reduction over the bytes of both files, page cache warm, interleaved with "
                              "the diff runs; best of the runs"},
        "ratio_to_bandwidth": ratio,
        "busy": busy,
        "memory": {**sampler.report(), "one_checkpoint_bytes": one_checkpoint, "fraction_of_one_checkpoint": peak_fraction,
                   "measured": "RssAnon of the process during the first diff pass, minus the baseline"},
        "rank": {"matrices": len(per_matrix), "seconds_total": rank_seconds,
                 "seconds_per_matrix_mean": rank_seconds / max(1, len(per_matrix)),
                 "seconds_per_matrix_median": statistics.median(m["seconds"] for m in per_matrix) if per_matrix else None,
                 "slowest": slowest, "all": per_matrix,
                 "cached_request_seconds_runs": cached, "cached_request_seconds": min(cached),
                 "effective_rank_99_range": [min(m["effective_rank_99"] for m in per_matrix),
                                             max(m["effective_rank_99"] for m in per_matrix)] if per_matrix else None},
        "targets": {
            "diff_within_3x_bandwidth": common.target(ratio, BANDWIDTH_RATIO_TARGET, "<="),
            "peak_anon_below_10pct_of_one_checkpoint": common.target(peak_fraction, PEAK_ANON_FRACTION_TARGET, "<="),
            "cached_rank_request_below_0.2s": common.target(min(cached), CACHED_SECONDS_TARGET, "<="),
        },
    }


@contextlib.contextmanager
def two_passes_only() -> Iterator[None]:
    """The diff as before the one read of two BF16 tensors: `internals.diff.one_pass` for no tensor."""
    from internals.diff import one_pass

    kept = one_pass.MIN_ELEMENTS
    one_pass.MIN_ELEMENTS = 1 << 62
    try:
        yield
    finally:
        one_pass.MIN_ELEMENTS = kept


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=None, help=f"decoder layers (default: all {common.REFERENCE_LAYERS})")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bins", type=int, default=64)
    p.add_argument("--cache-dir", default=str(common.DEFAULT_CACHE))
    p.add_argument("--out-name", default="diff", help="report name under benchmarks/out/")
    p.add_argument("--page-cache", choices=("from-disk", "as-found"), default="from-disk",
                   help="from-disk (default): drop both checkpoints from the page cache and read them back first, "
                        "as bench_stats does; as-found: measure the page cache as it is")
    p.add_argument("--no-two-passes", dest="two_passes", action="store_false",
                   help="skip the interleaved runs with the one read of BF16 tensors off")
    args = p.parse_args(argv)
    from benchmarks.bench_stats import refuse_ratios

    report = run(args)
    common.write_report(refuse_ratios(report, report["busy"]), args.out_name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
