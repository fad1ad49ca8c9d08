"""matrix_preview: torch-free mean |x| blocks, against the torch implementation it replaced."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from internals.errors import UserError
from internals.matrix_preview import matrix_preview
from internals.reduce import block_edges
from internals.weights import WeightStore
from tests_helpers import CancelAfter, Cancelled


def torch_preview(t: torch.Tensor, r_edges: list[int], c_edges: list[int]) -> np.ndarray:
    """The torch implementation ModelService.op_matrix_preview used before (float32 band sums), on the block
    edges the engine reports (internals.reduce.block_edges: nearly equal blocks)."""
    t = t.reshape(-1, t.shape[-1])
    rows, cols = len(r_edges) - 1, len(c_edges) - 1
    out = np.zeros((rows, cols), dtype=np.float32)
    for i in range(rows):
        band = t[r_edges[i] : r_edges[i + 1]].to(torch.float32).abs()
        sums = np.add.reduceat(band.sum(0).numpy().astype(np.float64), c_edges[:-1])
        out[i] = sums / (np.diff(c_edges) * band.shape[0])
    return out


def float64_preview(t: torch.Tensor, r: list[int], c: list[int]) -> np.ndarray:
    """Independent reference: float64 block means of the float32-decoded |x| (summed columns first, in
    the other order than the engine), rounded to float32."""
    a = t.to(torch.float32).abs().double().reshape(-1, t.shape[-1]).numpy()
    r, c = np.asarray(r), np.asarray(c)
    assert r[0] == 0 and r[-1] == a.shape[0] and c[0] == 0 and c[-1] == a.shape[1] and (np.diff(r) > 0).all()
    sums = np.add.reduceat(np.add.reduceat(a, c[:-1], axis=1), r[:-1], axis=0)
    return (sums / np.outer(np.diff(r), np.diff(c))).astype(np.float32)


DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64}
SHAPES = [(300, 200), (7, 5), (1000, 129), (2, 3, 40)]


@pytest.fixture
def saved(tmp_path):
    g = torch.Generator().manual_seed(1)
    tensors, exact = {}, {}
    for code, dt in DTYPES.items():
        for shape in SHAPES:
            key = f"{code}_{'x'.join(map(str, shape))}"
            tensors[key] = (torch.randn(*shape, generator=g) * 0.05).to(dt)
            # multiples of 1/64 below 4: every float32 partial sum is exact, so the order of additions cannot matter
            exact[key + "_exact"] = (torch.randint(-255, 256, shape, generator=g) / 64).to(dt)
    tensors.update(exact)
    tensors["vector"] = torch.ones(10)
    tensors["ints"] = torch.ones(4, 4, dtype=torch.int32)
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path))
    store = WeightStore([path])
    yield store, tensors
    store.close()


@pytest.mark.parametrize("rows,cols", [(64, 128), (3, 7), (1, 1), (5000, 5000)])
def test_equals_torch_implementation(saved, rows, cols):
    store, tensors = saved
    for key, t in tensors.items():
        if t.ndim < 2 or t.dtype == torch.int32:
            continue
        got = matrix_preview(store, key, rows, cols)
        edges = got["row_edges"], got["col_edges"]
        assert len(edges[0]) - 1 == min(rows, int(np.prod(t.shape[:-1]))) and len(edges[1]) - 1 == min(cols, t.shape[-1])
        old = torch_preview(t, *edges)
        assert got["values"].dtype == np.float32 and got["values"].shape == old.shape
        np.testing.assert_array_equal(got["values"], float64_preview(t, *edges), err_msg=key)
        if key.endswith("_exact"):
            np.testing.assert_array_equal(got["values"], old, err_msg=key)  # bit for bit
        else:  # the old float32 band sums round differently on long bands: within float32 rounding
            np.testing.assert_allclose(got["values"], old, rtol=2e-6, err_msg=key)
        n_rows = int(np.prod(t.shape[:-1]))
        assert got["row_edges"] == block_edges(n_rows, rows) and got["col_edges"] == block_edges(t.shape[-1], cols)
        assert got["shape"] == list(t.shape) and got["reduce"] == "mean |x|" and got["name"] == key


def test_rejects_non_matrices_and_cancels(saved):
    store, _ = saved
    with pytest.raises(UserError, match="not a floating-point matrix"):
        matrix_preview(store, "vector", 4, 4)
    with pytest.raises(UserError, match="not a floating-point matrix"):
        matrix_preview(store, "ints", 4, 4)

    check = CancelAfter(3)
    with pytest.raises(Cancelled):
        matrix_preview(store, "BF16_300x200", 64, 8, check)


def test_does_not_import_torch(saved, tmp_path):
    store, _ = saved
    path = store.entry("BF16_300x200").file
    code = ("import sys; from internals.weights import WeightStore; from internals.matrix_preview import matrix_preview;"
            f"v = matrix_preview(WeightStore([__import__('pathlib').Path({str(path)!r})]), 'BF16_300x200', 8, 8)['values'];"
            "assert 'torch' not in sys.modules, 'torch imported'; print(v.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(8, 8)"
