"""Benchmark: activation patching and the residual-stream activations against plain forward passes.

    python benchmarks/bench_patching.py                  # demo model + DeepSeek-R1-Distill-Qwen-1.5B shapes, 2 layers
    python benchmarks/bench_patching.py --layers 4 --patch-tokens 32

Two models: the shipped demo model (internals/demo_model, 3 layers) and the reference config's shapes
(hidden 1536, 12/2 heads, vocab 151936) with random weights and --layers layers. In one process, per model:

- patching: `activation_patching` (every grid: residual, attention, mlp per (layer, position), heads per
  (layer, head)) on a --patch-tokens prompt, against the baseline of the same number of plain forward
  passes of the corrupted prompt in batches of the same size (`model(ids, logits_to_keep=1)`: the LM head on
  the last position only, as patching does). Targets: time ratio <= 1.3; peak memory above the start at most
  1.3x the baseline's (one batch: both hold one batch of activations at a time).
- activations: `residual_activations` on a --tokens prompt against one plain forward pass of the decoder
  (eager attention, as loaded for the explorer). Target: time ratio <= 1.3.
Time: median of --repeats calls after a warm-up. Memory: as in bench_attention (VmHWM after malloc_trim).
JSON to stdout and benchmarks/out/patching.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.bench_attention import build_model, peak_extra_bytes  # noqa: E402

log = common.logger("bench_patching")


def measure(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    fn()
    runs, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        peak, _ = peak_extra_bytes(fn)
        runs.append(time.perf_counter() - start)
        peaks.append(peak)
    return {"seconds_median": statistics.median(runs), "seconds_runs": runs, "peak_extra_bytes": max(peaks)}


def bench_model(name: str, loaded: Any, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from internals.inference.activations import residual_activations
    from internals.inference.patching import GRIDS, activation_patching, default_batch_size, grid_cells

    model = loaded.model
    vocab = model.get_input_embeddings().num_embeddings
    gen = torch.Generator().manual_seed(args.seed)
    clean = torch.randint(0, vocab, (args.patch_tokens,), generator=gen).tolist()
    corrupt = list(clean)
    corrupt[args.patch_tokens // 2] = (corrupt[args.patch_tokens // 2] + 1) % vocab
    cells = len(grid_cells(model, args.patch_tokens, GRIDS))
    batch = args.batch or default_batch_size(args.patch_tokens)
    corrupt_ids = torch.tensor([corrupt])

    def patching() -> None:
        activation_patching(loaded, clean, corrupt, batch_size=batch)

    def plain_batches() -> None:
        with torch.no_grad():
            for start in range(0, cells, batch):
                rows = min(batch, cells - start)
                model(input_ids=corrupt_ids.expand(rows, -1), use_cache=False, logits_to_keep=1)

    long_ids = torch.randint(0, vocab, (args.tokens,), generator=gen).tolist()

    def activations() -> None:
        residual_activations(loaded, long_ids)

    def plain_forward() -> None:
        with torch.no_grad():
            model.base_model(input_ids=torch.tensor([long_ids]), use_cache=False)

    results = {}
    for label, fn in (("patching", patching), ("plain_batches", plain_batches), ("activations", activations),
                      ("plain_forward", plain_forward)):
        log(f"{name}: {label}")
        results[label] = measure(fn, args.repeats)
    patch_ratio = results["patching"]["seconds_median"] / results["plain_batches"]["seconds_median"]
    memory_ratio = results["patching"]["peak_extra_bytes"] / max(1, results["plain_batches"]["peak_extra_bytes"])
    act_ratio = results["activations"]["seconds_median"] / results["plain_forward"]["seconds_median"]
    return {"layers": model.config.num_hidden_layers, "patch_tokens": args.patch_tokens, "cells": cells,
            "batch_size": batch, "tokens": args.tokens, "variants": results,
            "patching_time_ratio": common.target(patch_ratio, 1.3, "<="),
            "patching_memory_ratio": common.target(memory_ratio, 1.3, "<="),
            "activations_time_ratio": common.target(act_ratio, 1.3, "<=")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from internals.demo_path import demo_model_path
    from internals.inference.loading import Loaded, load_for_inference
    from internals.sources import resolve_source

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"benchmark": "activation patching and residual activations vs plain forward passes",
                              "threads": args.threads, "repeats": args.repeats, "models": {}}
    demo = load_for_inference(resolve_source(str(demo_model_path())), device="cpu")
    report["models"]["demo"] = bench_model("demo", demo, args)
    log(f"building the {args.layers}-layer reference-shaped model")
    model = build_model(args.config, args.layers, "float32", args.seed)
    reference = Loaded(model=model, tokenizer=None, device=torch.device("cpu"), dtype=model.dtype)
    report["models"][f"reference_{args.layers}_layers"] = bench_model("reference", reference, args)
    report["machine"] = common.machine()
    return report


def main(argv: list[str] | None = None) -> int:
    def patching_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--patch-tokens", type=int, default=24, help="prompt length for patching")
        p.add_argument("--batch", type=int, default=None, help="patched runs per forward pass (default: automatic)")

    parser = common.model_bench_parser(
        __doc__, layers=2, layers_help="decoder layers of the reference-shaped model",
        tokens_help="prompt length for the activations", extra=patching_args,
    )
    args = parser.parse_args(argv)
    common.write_report(run(args), "patching")
    return 0


if __name__ == "__main__":
    sys.exit(main())
