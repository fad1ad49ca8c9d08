"""The exact untrained weights of the demo model, rebuilt from `config.json` and `init.json` in its folder.

Initialisation does not rely on transformers' own `_init_weights` (which may change between versions): every
parameter, in `named_parameters()` order, is drawn from one seeded `torch.Generator`:
weight matrices and embeddings ~ N(0, initializer_range), biases 0, RMSNorm weights 1.
`init.json` stores the seed and checksums (sha256 of all float32 bytes, and sum / abs-sum per tensor).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

INIT_FILE = "init.json"


@torch.no_grad()
def initialise_(model: torch.nn.Module, seed: int, std: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if name.endswith(".bias"):
            param.zero_()
        elif "norm" in name:
            param.fill_(1.0)
        else:
            values = torch.empty(param.shape, dtype=torch.float32)
            values.normal_(mean=0.0, std=std, generator=gen)
            param.copy_(values)


def build_initial_model(config: Any, seed: int) -> torch.nn.Module:
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM(config).to(torch.float32)  # type: ignore[arg-type]  # transformers' wrapper types `to` wrongly
    initialise_(model, seed, config.initializer_range)
    return model


def checksums(model: torch.nn.Module) -> dict[str, Any]:
    """sha256 over (name, float32 bytes) of every tensor in sorted order, and per-tensor sum/abs-sum."""
    sha = hashlib.sha256()
    per_tensor = {}
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().to(torch.float32).contiguous().cpu()
        sha.update(name.encode("utf-8"))
        sha.update(tensor.numpy().tobytes())
        per_tensor[name] = {
            "shape": list(tensor.shape),
            "sum": float(tensor.double().sum()),
            "abs_sum": float(tensor.double().abs().sum()),
        }
    return {"sha256": sha.hexdigest(), "tensors": per_tensor}


def read_init(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / INIT_FILE).read_text())


def initial_model(path: str | Path) -> torch.nn.Module:
    """The untrained model whose training produced the weights in `path` (same config, same seed)."""
    from transformers import AutoConfig

    folder = Path(path)
    config = AutoConfig.from_pretrained(folder)
    info = read_init(folder)
    model = build_initial_model(config, int(info["seed"]))
    model.eval()
    return model
