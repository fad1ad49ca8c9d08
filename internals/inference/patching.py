"""Activation patching: which activations of a clean prompt restore its answer when put into a corrupted run.

The clean and the corrupted prompt have the same number of tokens. The metric is the logit difference at
the last position between the target (the clean run's top token unless one is given) and the corrupted
run's top token (its best token other than the target, when they coincide), normalised so that 0 is the
corrupted run and 1 the clean run. Each cell of a grid is one forward pass of the corrupted prompt with one
activation replaced by the clean run's:

- residual[layer][position]: the decoder layer's output hidden state at that position;
- attention / mlp [layer][position]: what that attention block / MLP adds to the residual stream there;
- heads[layer][head]: one head's output at every position, i.e. its slice of the input of the attention's
  output projection (o_proj, GPT-2's c_proj), before the heads are mixed.

Cells run in batches: the batch holds B copies of the corrupted prompt and hooks on the real modules patch
row i with cell i's activation, so memory is that of one batch of B forward passes. Only the last position
goes through the LM head. `progress` and `check` are called between batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from internals.errors import UserError
from internals.inference.capture import Captured, capture, hooks, last_position_logits, part_modules
from internals.inference.errors import translate_oom
from internals.inference.model_parts import decoder_layers, first_tensor, num_heads, prompt_tensor, vocab_size
from internals.inference.result_types import PatchingResult
from internals.inference.tokens import token_label

Progress = Callable[[float, str], None]
Check = Callable[[], None]
GRIDS = ("residual", "attention", "mlp", "heads")


@dataclass(frozen=True)
class Patch:
    """One cell: put the clean `part` of `layer` at `index` (a position; a head for part "heads")."""

    part: str
    layer: int
    index: int


def activation_patching(loaded: Any, clean_ids: Sequence[int], corrupt_ids: Sequence[int],
                        target_id: int | None = None, grids: Sequence[str] = GRIDS, batch_size: int | None = None,
                        progress: Progress | None = None, check: Check | None = None) -> PatchingResult:
    """The patching grids (see the module docstring) for a clean and a corrupted prompt of the same length."""
    model, tokenizer = loaded.model, loaded.tokenizer
    clean, corrupt = prompt_tensor(model, clean_ids), prompt_tensor(model, corrupt_ids)
    if clean.shape != corrupt.shape:
        raise UserError(f"the clean and corrupted prompts must have the same number of tokens: clean "
                        f"{_labels(tokenizer, clean_ids)} ({clean.shape[1]}) vs corrupted "
                        f"{_labels(tokenizer, corrupt_ids)} ({corrupt.shape[1]})")
    unknown = [g for g in grids if g not in GRIDS]
    if unknown:
        raise UserError(f"unknown patching grid {unknown[0]!r}: choose from {', '.join(GRIDS)}")
    if target_id is not None and not 0 <= int(target_id) < vocab_size(model):
        raise UserError(f"target token id {target_id} is outside the vocabulary of {vocab_size(model)}")
    report = progress or (lambda fraction, message: None)
    with translate_oom(), torch.no_grad():
        report(0.0, "clean and corrupted runs")
        clean_run = capture(model, clean, tuple(grids))
        corrupt_logits = last_position_logits(model, corrupt)[0]
        target = int(clean_run.last_logits.argmax()) if target_id is None else int(target_id)
        other = _top_other(corrupt_logits, target)
        clean_diff = float(clean_run.last_logits[target] - clean_run.last_logits[other])
        corrupt_diff = float(corrupt_logits[target] - corrupt_logits[other])
        cells = grid_cells(model, T=int(clean.shape[1]), grids=grids)
        diffs = patched_logit_diffs(model, corrupt, clean_run, cells, target, other, batch_size, report, check)
    span = clean_diff - corrupt_diff
    normalized = abs(span) > 1e-6 * max(1.0, abs(clean_diff))
    scores = (diffs - corrupt_diff) / span if normalized else diffs - corrupt_diff
    out: dict[str, np.ndarray | None] = {g: None for g in GRIDS}
    start = 0
    for grid in grids:
        shape = _grid_shape(model, int(clean.shape[1]), grid)
        size = shape[0] * shape[1]
        out[grid] = scores[start:start + size].reshape(shape).astype(np.float32)
        start += size
    report(1.0, "done")
    return PatchingResult(
        clean_tokens=_labels(tokenizer, clean_ids), corrupt_tokens=_labels(tokenizer, corrupt_ids),
        target=label(tokenizer, target), target_id=target, corrupt_top=label(tokenizer, other),
        corrupt_top_id=other, clean_logit_diff=clean_diff, corrupt_logit_diff=corrupt_diff, normalized=normalized,
        residual=out["residual"], attention=out["attention"], mlp=out["mlp"], heads=out["heads"])


def grid_cells(model: nn.Module, T: int, grids: Sequence[str]) -> list[Patch]:
    """The cells of the asked grids, grid after grid, each row-major (layer, then position or head)."""
    cells = []
    for grid in grids:
        rows, columns = _grid_shape(model, T, grid)
        cells += [Patch(grid, layer, index) for layer in range(rows) for index in range(columns)]
    return cells


@torch.no_grad()
def patched_logit_diffs(model: nn.Module, corrupt: torch.Tensor, clean: Captured, cells: Sequence[Patch | None],
                        target: int, other: int, batch_size: int | None = None, progress: Progress | None = None,
                        check: Check | None = None) -> np.ndarray:
    """logit[target] - logit[other] at the last position of the corrupted prompt ids [1, T] with each cell
    patched from `clean` (a None cell patches nothing), float64 [len(cells)], `batch_size` cells per pass."""
    T = int(corrupt.shape[1])
    size = batch_size or default_batch_size(T)
    if size < 1:
        raise UserError(f"the batch size must be at least 1 (got {size})")
    modules = {part: part_modules(model, part) for part in GRIDS if any(c is not None and c.part == part for c in cells)}
    heads = num_heads(model)
    diffs = np.empty(len(cells), dtype=np.float64)
    for start in range(0, len(cells), size):
        if check is not None:
            check()
        if progress is not None:
            progress(start / max(1, len(cells)), f"patched runs {start + 1}-{min(len(cells), start + size)} of {len(cells)}")
        chunk = cells[start:start + size]
        handles = []
        for part, per_layer in modules.items():
            for layer, module in enumerate(per_layer):
                rows = [(row, cell.index) for row, cell in enumerate(chunk)
                        if cell is not None and cell.part == part and cell.layer == layer]
                if rows:
                    source = getattr(clean, part)[layer]
                    if part == "heads":
                        handles.append(module.register_forward_pre_hook(_patch_heads(rows, source, heads)))
                    else:
                        handles.append(module.register_forward_hook(_patch_positions(rows, source)))
        with hooks(handles):
            logits = last_position_logits(model, corrupt.expand(len(chunk), T))
        diffs[start:start + len(chunk)] = (logits[:, target] - logits[:, other]).double().cpu().numpy()
    return diffs


def default_batch_size(tokens: int) -> int:
    """Patched runs per forward pass: about 4096 tokens per batch, at most 64 rows."""
    return max(1, min(64, 4096 // max(1, tokens)))


def _patch_positions(rows: list[tuple[int, int]], source: torch.Tensor):
    """Forward hook: output[row, position] = source[position] for each (row, position), in place."""
    row_index = torch.tensor([r for r, _ in rows], device=source.device)
    positions = torch.tensor([p for _, p in rows], device=source.device)
    values = source[positions]

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        hidden = output if isinstance(output, torch.Tensor) else _first(output)
        hidden[row_index.to(hidden.device), positions.to(hidden.device)] = values.to(hidden.device, hidden.dtype)
    return hook


def _patch_heads(rows: list[tuple[int, int]], source: torch.Tensor, heads: int):
    """Pre-hook on the output projection: row's head slice at every position = the clean run's."""
    width = int(source.shape[-1]) // heads

    def hook(module: nn.Module, args: tuple) -> tuple:
        x = args[0].clone()
        for row, head in rows:
            cut = slice(head * width, (head + 1) * width)
            x[row, :, cut] = source[:, cut].to(x.device, x.dtype)
        return (x, *args[1:])
    return hook


def _first(output: Any) -> torch.Tensor:
    tensor = first_tensor(output)
    if tensor is None:
        raise RuntimeError(f"cannot patch an output of type {type(output).__name__}")
    return tensor


def _top_other(logits: torch.Tensor, target: int) -> int:
    """The highest-scoring token other than `target`."""
    top2 = torch.topk(logits, 2).indices.tolist()
    return top2[0] if top2[0] != target else top2[1]


def _grid_shape(model: nn.Module, T: int, grid: str) -> tuple[int, int]:
    return len(decoder_layers(model)), (num_heads(model) if grid == "heads" else T)


def _labels(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [label(tokenizer, i) for i in ids]


def label(tokenizer: Any, token_id: int) -> str:
    """token_label, or `<id N>` without a tokenizer (benchmarks build models without one)."""
    return token_label(tokenizer, int(token_id)) if tokenizer is not None else f"<id {int(token_id)}>"
