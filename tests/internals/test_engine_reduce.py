"""The engine's block reduction (numpy only) against a direct mean over each block."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from internals.reduce import block_edges, block_means
from tests_helpers import REPO


@pytest.mark.parametrize("shape, rows, cols", [((10, 7), 3, 4), ((64, 128), 64, 128), ((5, 5), 9, 9), ((33, 17), 1, 1)])
def test_block_means_are_exact_block_means(shape, rows, cols):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    r, c = block_edges(shape[0], rows), block_edges(shape[1], cols)
    out = block_means(lambda a, b: np.abs(x[a:b]), r, c)
    expect = [[np.abs(x[r[i]:r[i + 1], c[j]:c[j + 1]]).mean() for j in range(len(c) - 1)] for i in range(len(r) - 1)]
    assert out.dtype == np.float32 and np.allclose(out, expect, rtol=1e-6)
    sums = block_means(lambda a, b: x[a:b], r, c, sum_cols=True)
    assert np.allclose(sums.sum(1), [x[r[i]:r[i + 1]].sum(1).mean() for i in range(len(r) - 1)], atol=1e-5)


def test_edges_are_strictly_increasing_and_check_runs_per_band():
    assert block_edges(10, 4) == [0, 2, 5, 8, 10] and block_edges(3, 10) == [0, 1, 2, 3]
    calls = []
    block_means(lambda a, b: np.ones((b - a, 4)), [0, 1, 3], [0, 2, 4], check=lambda: calls.append(1))
    assert len(calls) == 2
    with pytest.raises(ValueError):
        block_means(lambda a, b: np.ones((b - a, 4)), [0, 0, 3], [0, 4])


def test_reduce_and_dtypes_import_without_torch():
    code = "import sys, internals.reduce, internals.dtypes; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr
