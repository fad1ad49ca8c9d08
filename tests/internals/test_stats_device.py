"""Pattern counts on a torch device: the same code path run on the CPU gives identical statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from internals.errors import UserError
from internals.stats import count_patterns
from internals.stats.device import DeviceCounter, check_device


@pytest.mark.parametrize("code,dt", [("BF16", torch.bfloat16), ("F16", torch.float16), ("I8", torch.int8),
                                     ("U8", torch.uint8), ("I16", torch.int16)])
@pytest.mark.parametrize("chunk", [8, 1000, 1 << 20])
def test_device_path_on_cpu_equals_kernels(code, dt, chunk):
    g = torch.Generator().manual_seed(3)
    if dt.is_floating_point:
        t = torch.randn(1234, 7, generator=g).to(dt)
        t.view(-1)[:5] = torch.tensor([float("nan"), float("inf"), -0.0, 0.0, -float("inf")]).to(dt)
    else:
        t = torch.randint(-100 if dt != torch.uint8 else 0, 100, (1234, 7), generator=g).to(dt)
    raw = t.view(torch.uint8).reshape(-1).numpy()
    counter = DeviceCounter("cpu", chunk_bytes=chunk)
    got = counter.count(raw, code, tuple(t.shape), name="w")
    want = count_patterns(raw, code, tuple(t.shape), name="w")
    np.testing.assert_array_equal(got.counts, want.counts)
    assert got.stats(32).to_dict() == want.stats(32).to_dict()


def test_cli_device_cpu_equals_default(tiny_models, capsys):
    import json

    from internals.cli.main import main

    model = str(tiny_models("llama", "bfloat16"))
    assert main(["stats", model, "--json", "--no-cache"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["stats", model, "--json", "--no-cache", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out) == plain


def test_unusable_device_is_one_error_line():
    with pytest.raises(UserError, match="cpu or cuda"):
        check_device("tpu-9")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            check_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_without_cuda_is_one_error_line(tiny_models, capsys):
    from internals.cli.main import main

    model = str(tiny_models("llama", "bfloat16"))
    capsys.readouterr()  # building the fixture writes progress
    with pytest.raises(SystemExit) as exit_:
        main(["stats", model, "--device", "cuda"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no CUDA device" in err[0]
