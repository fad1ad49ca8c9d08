"""Planting known weight changes into copies of tiny models (shared by the diff tests)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def low_rank_delta(shape: tuple[int, int], rank: int, norm: float, seed: int = 0) -> torch.Tensor:
    """A float64 matrix of exactly `rank` (singular values 1 .. 0.5, scaled) and Frobenius norm `norm`."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(shape[0], rank, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(shape[1], rank, generator=g, dtype=torch.float64))
    s = torch.linspace(1.0, 0.5, rank, dtype=torch.float64)
    d = u @ torch.diag(s) @ v.T
    return d * (norm / float(d.norm()))


def plant(base: Path, out: Path, changes: dict[str, tuple[int, float]], seed: int = 0) -> dict[str, dict]:
    """Copy the model folder `base` to `out`, adding to each named stored tensor a change of (rank, rel_change).

    Returns, per changed tensor, the planted rank and the exact expected relative change (planted norm over
    the base tensor's norm, in float64)."""
    shutil.copytree(base, out)
    expected: dict[str, dict] = {}
    files = sorted(out.glob("*.safetensors"))
    for i, path in enumerate(files):
        tensors = load_file(path)
        touched = False
        for name, (rank, rel) in changes.items():
            if name not in tensors:
                continue
            w = tensors[name]
            base_norm = float(w.double().norm())
            delta = low_rank_delta(tuple(w.shape), rank, rel * base_norm, seed=seed + i + len(expected))
            new = (w.double() + delta).to(w.dtype)
            actual = float((new.double() - w.double()).norm())  # after rounding to the stored dtype
            tensors[name] = new.contiguous()
            expected[name] = {"rank": rank, "rel_change": actual / base_norm, "planted_rel": rel}
            touched = True
        if touched:
            save_file(tensors, path, metadata={"format": "pt"})
    missing = set(changes) - set(expected)
    assert not missing, f"no such stored tensors: {missing}"
    return expected


def untie(tied: Path, out: Path, rank: int, rel: float) -> float:
    """Copy a tied model as an untied one whose lm_head is the embedding plus a planted change; return rel_change."""
    shutil.copytree(tied, out)
    config = json.loads((out / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (out / "config.json").write_text(json.dumps(config))
    path = out / "model.safetensors"
    tensors = load_file(path)
    assert "lm_head.weight" not in tensors
    emb = tensors["model.embed_tokens.weight"]
    delta = low_rank_delta(tuple(emb.shape), rank, rel * float(emb.double().norm()), seed=7)
    head = (emb.double() + delta).to(emb.dtype)
    tensors["lm_head.weight"] = head.contiguous()
    save_file(tensors, path, metadata={"format": "pt"})
    return float((head.double() - emb.double()).norm() / emb.double().norm())


@contextmanager
def planted_sides(base: Path, tmp_path: Path, changes: dict[str, tuple[int, float]]) -> Iterator[tuple[Any, dict]]:
    """`with planted_sides(base, tmp_path, changes) as (sides, expected):` — `plant` the changes into a copy of
    `base` at `tmp_path / "tuned"` and open both sides (closed after the block); `expected` is what `plant`
    returns."""
    from internals.diff import open_sides

    tuned = tmp_path / "tuned"
    expected = plant(base, tuned, changes)
    sides = open_sides(str(base), str(tuned))
    try:
        yield sides, expected
    finally:
        sides.close()
