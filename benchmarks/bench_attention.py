"""Benchmark: one layer's attention map on demand versus `output_attentions=True` for all layers.

    python benchmarks/bench_attention.py                 # DeepSeek-R1-Distill-Qwen-1.5B shapes, 4 layers, 512 tokens
    python benchmarks/bench_attention.py --layers 28     # the real depth (~7 GB of RAM in float32, minutes to build)
    nice -n 5 python -m benchmarks.bench_attention --tokens 1024 --dtype bfloat16

The model has the reference config's shapes (hidden 1536, 12 query / 2 key-value heads, vocab 151936) with
random weights and fewer layers (--layers) so that it builds in seconds on a CPU. Measured in one process,
for a random prompt of --tokens ids:

- ours: `attention_for_layer` for the first and the last layer (the last cannot stop the forward early);
- baseline: the decoder with `output_attentions=True` (transformers keeps every layer's map), then the same
  layer's map converted to the same float32 numpy array.
- reference: a plain forward pass of the decoder keeping nothing (the floor both are measured against).
Memory: the peak resident set during the call minus the resident set before it. Before each call freed heap
memory is handed back to the OS (`malloc_trim`) and the kernel's peak counter is reset (`/proc/self/clear_refs`),
so the figure is the call's own high-water mark, not a sampled estimate (sampling with `RssAnonSampler` is
the fallback where clear_refs is not allowed). glibc's mmap threshold is pinned at 64 KiB (`mallopt`):
with its default dynamic threshold, freed activations stay in the heap and fragment it, which added up to
~100 MB of noise that depended on the call order. Time: median of --repeats calls after one warm-up each.
Expected: ours grows with one layer's maps (heads x T x T), the baseline with all layers' maps.
JSON to stdout and benchmarks/out/attention.json.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

log = common.logger("bench_attention")


# --- memory ----------------------------------------------------------------------------------------------

def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _pin_mmap_threshold() -> bool:
    """Serve every allocation over 64 KiB with mmap (freed at once), so RSS follows live tensors."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _trim_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _can_reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_extra_bytes(fn: Callable[[], Any]) -> tuple[int, Any]:
    """(peak resident bytes above the start while fn runs, fn's result)."""
    _trim_heap()
    if _can_reset_peak():
        before = _status_kb("VmRSS")
        result = fn()
        return max(0, _status_kb("VmHWM") - before) * 1024, result
    with common.RssAnonSampler(interval=0.002) as sampler:
        result = fn()
    return sampler.extra, result


# --- model -------------------------------------------------------------------------------------------------

def build_model(config_path: Path, layers: int, dtype: str, seed: int):
    """The reference architecture with `layers` layers and random weights (transformers' own init)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = json.loads(Path(config_path).read_text())
    model_type = cfg.pop("model_type")
    cfg["num_hidden_layers"] = layers
    cfg["max_window_layers"] = min(int(cfg.get("max_window_layers", layers)), layers)
    cfg.pop("torch_dtype", None)
    config = AutoConfig.for_model(model_type, **cfg)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), attn_implementation="eager")
    return model.eval()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from internals.inference.attention import attention_for_layer
    from internals.inference.loading import Loaded

    pinned = _pin_mmap_threshold()
    torch.set_num_threads(args.threads)
    log(f"building {args.layers}-layer model ({args.dtype}, random weights)")
    t0 = time.perf_counter()
    model = build_model(args.config, args.layers, args.dtype, args.seed)
    build_s = time.perf_counter() - t0
    loaded = Loaded(model=model, tokenizer=None, device=torch.device("cpu"), dtype=model.dtype)
    config = model.config
    heads, tokens = config.num_attention_heads, args.tokens
    ids = torch.randint(0, config.vocab_size, (tokens,), generator=torch.Generator().manual_seed(args.seed)).tolist()
    itemsize = torch.empty((), dtype=model.dtype).element_size()
    one_map = heads * tokens * tokens * itemsize

    def ours(layer: int) -> Callable[[], Any]:
        return lambda: attention_for_layer(loaded, ids, layer)["weights"]

    def baseline(layer: int) -> Callable[[], Any]:
        def call():
            with torch.no_grad():
                out = model.base_model(input_ids=torch.tensor([ids]), output_attentions=True, use_cache=False)
            return np.ascontiguousarray(out.attentions[layer][0].float().numpy())
        return call

    def reference() -> None:
        with torch.no_grad():
            model.base_model(input_ids=torch.tensor([ids]), use_cache=False)

    last = args.layers - 1
    variants = {"reference_plain_forward": reference, "ours_first_layer": ours(0), "ours_last_layer": ours(last),
                "baseline_all_layers_last": baseline(last)}
    results: dict[str, Any] = {}
    arrays = {}
    for name, fn in variants.items():
        log(f"{name}: warm-up + {args.repeats} runs")
        fn()
        runs, peaks = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            peak, arrays[name] = peak_extra_bytes(fn)
            runs.append(time.perf_counter() - start)
            peaks.append(peak)
            if arrays[name] is not None:  # keep a corner for the equality check only
                arrays[name] = arrays[name][:1, :4, :4].copy()
        results[name] = {"seconds_median": statistics.median(runs), "seconds_runs": runs,
                         "peak_extra_bytes": max(peaks), "peak_extra_runs": peaks,
                         "peak_extra_in_one_layer_maps": max(peaks) / one_map}
    ours_last, base = results["ours_last_layer"], results["baseline_all_layers_last"]
    floor = results["reference_plain_forward"]["peak_extra_bytes"]
    return {
        "benchmark": "attention for one layer vs output_attentions=True",
        "config": str(args.config),
        "layers": args.layers,
        "tokens": tokens,
        "dtype": args.dtype,
        "heads": heads,
        "key_value_heads": config.num_key_value_heads,
        "threads": args.threads,
        "build_seconds": build_s,
        "memory_method": "VmHWM reset via /proc/self/clear_refs after malloc_trim"
        if _can_reset_peak()
        else "RssAnon sampled every 2 ms",
        "mmap_threshold_pinned": pinned,
        "one_layer_map_bytes": one_map,
        "all_layers_map_bytes": one_map * args.layers,
        "float32_output_bytes": heads * tokens * tokens * 4,
        "variants": results,
        "memory_ratio_baseline_over_ours": base["peak_extra_bytes"] / max(1, ours_last["peak_extra_bytes"]),
        "above_plain_forward_in_one_layer_maps": {
            name: (results[name]["peak_extra_bytes"] - floor) / one_map
            for name in ("ours_first_layer", "ours_last_layer", "baseline_all_layers_last")
        },
        "time_ratio_baseline_over_ours_last": base["seconds_median"] / ours_last["seconds_median"],
        "same_map": bool(np.allclose(arrays["ours_last_layer"], arrays["baseline_all_layers_last"], atol=1e-4)),
        "extrapolated_28_layers_map_bytes": {"ours": one_map, "baseline": one_map * 28},
        "machine": common.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = common.model_bench_parser(
        __doc__, layers=4, layers_help="decoder layers to build (the real model has 28)",
        extra=lambda p: p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32"),
    )
    args = parser.parse_args(argv)
    common.write_report(run(args), "attention")
    return 0


if __name__ == "__main__":
    sys.exit(main())
