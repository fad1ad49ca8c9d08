"""Shared benchmark helpers: safetensors reading, synthetic checkpoints, memory sampling, bandwidth, targets.

Every figure a benchmark reports should be a ratio or bound measured in the same run on the same machine
(the machines here are shared: absolute seconds mean little, ratios a bit more).

- `read_header(path)` / `tensor_bytes(path)`: minimal safetensors reader (8-byte little-endian header
  length, JSON header, data) giving each tensor's bytes as a uint8 view of one read-only `np.memmap`.
- `synthetic_checkpoint(config, layers, cache_dir)`: a bf16 checkpoint with a real model's parameter
  names and shapes (built on the meta device), random normal values; cached and reused.
- `RssAnonSampler`: peak RssAnon (anonymous resident memory, from /proc/<pid>/status) of this process and
  all its descendants, sampled by a thread every 10 ms, minus the baseline taken at start.
- `measure_bandwidth(arrays)`: seconds for numpy reductions over the same bytes (page cache warm).
- `target(...)`: a met/missed record for the JSON report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
DEFAULT_CACHE = BENCH_DIR / ".cache"
OUT_DIR = BENCH_DIR / "out"
REFERENCE_CONFIG = DATA_DIR / "deepseek-r1-distill-qwen-1.5b.config.json"
#: Decoder layers of the reference model (a "full" run builds them all).
REFERENCE_LAYERS: int = json.loads(REFERENCE_CONFIG.read_text(encoding="utf-8"))["num_hidden_layers"]

sys.path.insert(0, str(REPO))  # the benchmarks run as scripts too
from internals.dtypes import BY_CODE as _DTYPES  # noqa: E402 - the one dtype table

SAFETENSORS_ITEMSIZE = {code: int(info.itemsize) for code, info in _DTYPES.items() if info.itemsize >= 1}


# ------------------------------------------------------------------------------------------------
# safetensors


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """(header without "__metadata__", byte offset where the data starts)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


def tensor_bytes(path: str | os.PathLike) -> Iterator[tuple[str, str, tuple[int, ...], np.ndarray]]:
    """(name, dtype code, shape, uint8 view of the tensor's bytes) in file order, from one read-only memmap."""
    header, start = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        lo, hi = info["data_offsets"]
        yield name, info["dtype"], tuple(info["shape"]), mm[start + lo:start + hi]


def write_safetensors(path: Path, tensors: list[tuple[str, str, tuple[int, ...]]], fill) -> None:
    """Write a safetensors file tensor by tensor: fill(name, shape, file) writes each tensor's bytes."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape in tensors:
        n = math.prod(shape) * SAFETENSORS_ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, _dtype, shape in tensors:
            before = f.tell()
            fill(name, shape, f)
            lo, hi = header[name]["data_offsets"]
            assert f.tell() - before == hi - lo, name


# ------------------------------------------------------------------------------------------------
# synthetic checkpoint with real shapes


def model_shapes(config_path: Path = REFERENCE_CONFIG, layers: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """Parameter names and shapes of the model of `config_path`, built on the meta device (no memory)."""
    import accelerate
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg_dict = json.loads(Path(config_path).read_text())
    model_type = cfg_dict.pop("model_type")
    if layers is not None:
        cfg_dict["num_hidden_layers"] = int(layers)
        cfg_dict["max_window_layers"] = min(int(cfg_dict.get("max_window_layers", layers)), int(layers))
    cfg = AutoConfig.for_model(model_type, **cfg_dict)
    with accelerate.init_empty_weights():
        model = AutoModelForCausalLM.from_config(cfg)
    return [(name, tuple(t.shape)) for name, t in model.state_dict().items()]


def synthetic_checkpoint(config_path: Path = REFERENCE_CONFIG, layers: int | None = None,
                         cache_dir: Path = DEFAULT_CACHE, seed: int = 0, log=None) -> tuple[Path, bool, float]:
    """A bf16 safetensors file with the model's names and shapes; returns (path, generated now, seconds).

    Values: normal with std 0.02 (norm weights: mean 1), plus a few outliers per tensor (about one in
    100,000 elements, magnitudes 0.5 to 8), deterministic for a seed. Reused when already in `cache_dir`.
    """
    import torch

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tag = "full" if layers is None else f"L{int(layers)}"
    path = cache_dir / f"{Path(config_path).name.replace('.config.json', '')}-{tag}-bf16-s{seed}.safetensors"
    if path.exists():
        try:
            header, start = read_header(path)
            end = max(v["data_offsets"][1] for v in header.values())
            if path.stat().st_size == start + end:
                return path, False, 0.0
        except (OSError, ValueError, KeyError):
            pass
    t0 = time.perf_counter()
    shapes = model_shapes(config_path, layers)
    gen = torch.Generator().manual_seed(seed)
    piece = 16 * 1024 * 1024

    def fill(name: str, shape: tuple[int, ...], f) -> None:
        n = math.prod(shape)
        is_norm = len(shape) == 1 and "norm" in name
        for lo in range(0, n, piece):
            m = min(piece, n - lo)
            x = torch.randn(m, generator=gen) * 0.02
            if is_norm:
                x += 1.0
            k = max(1, m // 100_000) if m >= 1000 else 0
            if k:
                idx = torch.randint(0, m, (k,), generator=gen)
                mag = 0.5 + torch.rand(k, generator=gen) * 7.5
                sign = torch.where(torch.rand(k, generator=gen) < 0.5, -1.0, 1.0)
                x[idx] = mag * sign
            f.write(x.to(torch.bfloat16).view(torch.int16).numpy().tobytes())

    tmp = path.with_suffix(".tmp")
    if log:
        log(f"writing synthetic checkpoint {path} ({sum(math.prod(s) for _, s in shapes) * 2 / 1e9:.2f} GB)")
    write_safetensors(tmp, [(name, "BF16", shape) for name, shape in shapes], fill)
    os.replace(tmp, path)
    return path, True, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# memory


def _rss_anon(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_rss_anon(pid: int | None = None) -> int:
    """RssAnon of a process and all its descendants, in bytes."""
    import psutil

    pid = os.getpid() if pid is None else pid
    total = _rss_anon(pid)
    try:
        for child in psutil.Process(pid).children(recursive=True):
            total += _rss_anon(child.pid)
    except psutil.Error:
        pass
    return total


class RssAnonSampler:
    """Context manager: peak RssAnon of the process tree above the baseline taken on entry."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_anon())
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssAnonSampler:
        self.baseline = self.peak = tree_rss_anon()
        self._thread = threading.Thread(target=self._run, name="rss-anon-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak = max(self.peak, tree_rss_anon())

    @property
    def extra(self) -> int:
        return max(0, self.peak - self.baseline)

    def report(self) -> dict[str, Any]:
        return {"baseline_rss_anon_bytes": self.baseline, "peak_rss_anon_bytes": self.peak,
                "peak_extra_bytes": self.extra, "samples": self.samples, "interval_s": self.interval}


# ------------------------------------------------------------------------------------------------
# timing


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def measure_bandwidth(arrays: list[np.ndarray], repeats: int = 3) -> dict[str, Any]:
    """Seconds for numpy reductions that read every byte of `arrays` (uint8 views) once, page cache warm.

    Variants: `np.add.reduce` over a uint64 view (8 bytes per element: the closest numpy gets to the
    memory bandwidth) and over a uint16 view with a uint64 accumulator (one element per bf16 value).
    The fastest variant is the reference ("bandwidth"). In the first variant, arrays whose size is not a
    multiple of 8 bytes are summed as uint16.
    """

    def sum_u64() -> None:
        for a in arrays:
            if a.size % 8 == 0:
                np.add.reduce(a.view(np.uint64))
            else:
                np.add.reduce(a.view(np.uint16), dtype=np.uint64)

    def sum_u16() -> None:
        for a in arrays:
            np.add.reduce(a.view(np.uint16), dtype=np.uint64)

    total = int(sum(a.size for a in arrays))
    variants = {}
    for name, fn in (("np.add.reduce(uint64 view)", sum_u64), ("np.add.reduce(uint16 view, dtype=uint64)", sum_u16)):
        runs = timed(fn, repeats)
        variants[name] = {"seconds_runs": runs, "seconds": min(runs), "bytes_per_s": total / min(runs)}
    best = min(variants, key=lambda k: variants[k]["seconds"])
    return {"reference": best, "seconds": variants[best]["seconds"], "bytes": total,
            "bytes_per_s": variants[best]["bytes_per_s"], "threads": 1, "variants": variants}


def busy_reason() -> str | None:
    """Why ratios measured now would mislead (the 1-minute load average above the usable cores), or None."""
    try:
        load = os.getloadavg()[0]
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if load > cores:
        return f"machine busy: load average {load:.1f} > {cores} cores; ratio not reported (re-run on a quiet machine)"
    return None


def guarded_ratio(value: float | None, baseline: float | None, what: str, baseline_what: str,
                  busy: str | None) -> dict[str, Any]:
    """A ratio with the two figures it divides and what each is; the ratio is None (with the reason) when
    the machine was busy during the measurement."""
    rec: dict[str, Any] = {"what": what, "value": value, "baseline": baseline_what, "baseline_value": baseline}
    if busy:
        rec.update(ratio=None, refused=busy)
    else:
        rec["ratio"] = value / baseline if value is not None and baseline else None
    return rec


def file_reduction_seconds(path: str | os.PathLike, repeats: int = 3) -> tuple[float, int]:
    """(best seconds, bytes) of one numpy uint64 reduction over all tensor bytes of a safetensors file,
    as one array (page cache warm): the floor any full read of those bytes is compared with."""
    _header, start = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    data = mm[start:]
    data = np.asarray(data[: data.size // 8 * 8]).view(np.uint64)
    np.add.reduce(data)  # warm the page cache and the page tables
    return min(timed(lambda: np.add.reduce(data), repeats)), int(data.nbytes)


_FRESH_REDUCTION = """
import sys, time, numpy as np
sys.path.insert(0, sys.argv[2])
from benchmarks.common import read_header
_header, start = read_header(sys.argv[1])
data = np.memmap(sys.argv[1], dtype=np.uint8, mode="r")[start:]
data = np.asarray(data[: data.size // 8 * 8]).view(np.uint64)
t0 = time.perf_counter()
np.add.reduce(data)
print(time.perf_counter() - t0)
"""


def fresh_map_reduction_seconds(path: str | os.PathLike) -> float:
    """Seconds of the same uint64 reduction as `file_reduction_seconds`, but the first one over a map newly
    made in a fresh process (page cache warm, page tables not): what any reader of a memory map pays in a
    new process, e.g. the `stats` command."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _FRESH_REDUCTION, str(path), str(REPO)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def page_cache_state(path: str | os.PathLike) -> dict[str, Any]:
    """How the kernel caches the file now: the share of its bytes that a fresh map, once read, has mapped
    with 2 MiB entries (`FilePmdMapped`; None where the kernel does not say). Near 1 (large folios, as ext4
    and XFS on recent kernels cache a file read from disk), a fresh process maps the file for next to
    nothing; near 0 (small folios, e.g. a file just written), it pays about 0.07 s per GB to map it."""
    from internals.stats.page_cache import pmd_mapped_bytes

    mm = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        np.add.reduce(mm[: mm.size // 8 * 8].view(np.uint64))
        pmd = pmd_mapped_bytes(int(mm.__array_interface__["data"][0]))
        return {"bytes": int(mm.size), "pmd_mapped_fraction": None if pmd is None else pmd / mm.size}
    finally:
        mm._mmap.close()  # type: ignore[attr-defined]


def cache_as_read_from_disk(path: str | os.PathLike) -> dict[str, Any]:
    """Drop the file from the page cache and read it back in order, so that the kernel caches it the way it
    caches a model read from disk (the state a benchmark should not inherit from how the file was made);
    the seconds of the read (from disk) and the resulting `page_cache_state`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        t0 = time.perf_counter()
        while os.read(fd, 8 << 20):
            pass
        seconds = time.perf_counter() - t0
    finally:
        os.close(fd)
    return {"read_seconds": seconds, **page_cache_state(path)}


def prepare_page_cache(files: dict[str, Path], how: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The benchmarks' `--page-cache` option over their checkpoints ({key: path}): "from-disk" drops each from
    the page cache and reads it back (`cache_as_read_from_disk`), "as-found" only reports the state
    (`page_cache_state`); the report's `page_cache` record."""
    out: dict[str, Any] = {"prepared": how}
    for key, path in files.items():
        if how == "from-disk":
            log(f"page cache: dropping {path.name} and reading it back from disk")
            out[key] = cache_as_read_from_disk(path)
        else:
            out[key] = page_cache_state(path)
    return out


def command_seconds(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> float:
    """Wall seconds of one subprocess run (output discarded); raises when it fails."""
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()[-300:]}")
    return seconds


def target(value: float | None, limit: float, kind: str) -> dict[str, Any]:
    """A target record: kind "<=" (value must not exceed limit) or ">=" (value must reach limit)."""
    if value is None:
        return {"target": f"{kind} {limit}", "value": None, "met": False, "missed_by": None}
    met = value <= limit if kind == "<=" else value >= limit
    rec: dict[str, Any] = {"target": f"{kind} {limit}", "value": value, "met": bool(met)}
    if met:
        rec["missed_by"] = None
        rec["headroom_factor"] = (limit / value if kind == "<=" else value / limit) if value else None
    else:
        rec["missed_by"] = value - limit if kind == "<=" else limit - value
        rec["missed_by_factor"] = value / limit if kind == "<=" else (limit / value if value else None)
    return rec


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__}
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
        info["nice"] = os.nice(0)
        info["load_average"] = list(os.getloadavg())
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_bytes"] = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    return info


def write_report(report: dict[str, Any], name: str, out_dir: Path = OUT_DIR) -> Path:
    """JSON to stdout and to benchmarks/out/<name>.json; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    text = json.dumps(report, indent=2, allow_nan=False)
    path.write_text(text + "\n")
    print(text)
    return path


def logger(name: str) -> Callable[[str], None]:
    """`log(msg)` for benchmark `name`: a `[name] msg` line on stderr (stdout stays for the report)."""

    def log(msg: str) -> None:
        print(f"[{name}] {msg}", file=sys.stderr, flush=True)

    return log


def model_bench_parser(doc: str, *, layers: int, layers_help: str, tokens_help: str | None = None,
                       extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.ArgumentParser:
    """The options of the forward-pass benchmarks: the reference config, how many layers to build, the prompt
    length, whatever `extra` adds, then repeats, torch threads and seed."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REFERENCE_CONFIG)
    parser.add_argument("--layers", type=int, default=layers, help=layers_help)
    parser.add_argument("--tokens", type=int, default=512, help=tokens_help)
    if extra is not None:
        extra(parser)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machines are shared)")
    parser.add_argument("--seed", type=int, default=0)
    return parser
