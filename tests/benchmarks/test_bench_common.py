"""Benchmark honesty helpers: a ratio is refused on a busy machine; the file floor reads every tensor byte."""

from __future__ import annotations

import numpy as np

from benchmarks import common


def test_busy_machine_refuses_the_ratio(monkeypatch):
    monkeypatch.setattr(common.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr(common.os, "sched_getaffinity", lambda pid: {0, 1})
    reason = common.busy_reason()
    assert reason and "9.0 > 2 cores" in reason
    rec = common.guarded_ratio(3.0, 1.5, "ours", "floor", reason)
    assert rec["ratio"] is None and rec["refused"] == reason and rec["value"] == 3.0 and rec["baseline"] == "floor"
    monkeypatch.setattr(common.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert common.busy_reason() is None
    assert common.guarded_ratio(3.0, 1.5, "ours", "floor", None)["ratio"] == 2.0


def test_file_reduction_covers_the_tensor_bytes(tmp_path):
    path = tmp_path / "x.safetensors"
    common.write_safetensors(path, [("a", "BF16", (64, 8)), ("b", "F32", (16,))],
                             lambda name, shape, f: f.write(np.ones(int(np.prod(shape)) * (2 if name == "a" else 4),
                                                                    np.uint8).tobytes()))
    seconds, nbytes = common.file_reduction_seconds(path, repeats=1)
    assert nbytes == (64 * 8 * 2 + 16 * 4) // 8 * 8 and seconds >= 0
    assert common.SAFETENSORS_ITEMSIZE["BF16"] == 2 and common.SAFETENSORS_ITEMSIZE["F32"] == 4


def test_busy_report_has_no_ratio():
    from benchmarks.bench_stats import refuse_ratios

    report = {"ratio_to_bandwidth": 2.0, "ratio_to_other_bandwidth_variants": {"u64": 1.5},
              "naive": {"speedup": 12.0, "seconds": 3.0},
              "targets": {"naive_speedup_at_least_10x": common.target(12.0, 10.0, ">="),
                          "peak_anon_below_10pct": common.target(0.01, 0.1, "<=")}}
    out = refuse_ratios(report, "busy")
    assert out["ratio_to_bandwidth"] is None and out["ratio_to_other_bandwidth_variants"] == {"u64": None}
    assert out["naive"] == {"speedup": None, "seconds": 3.0}
    assert out["targets"]["naive_speedup_at_least_10x"]["value"] is None
    assert out["targets"]["peak_anon_below_10pct"]["value"] == 0.01 and out["ratios_refused"] == "busy"
    assert refuse_ratios(report, None) is report
