"""Nearest tokens in the input embedding space, by cosine similarity.

A vocabulary of 150k rows of 4k values is 2.4 GB in float32: the rows are compared in chunks on their own
device, keeping only a running top-k, so the extra memory is one float32 chunk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from internals.errors import UserError
from internals.inference.errors import translate_oom
from internals.inference.tokens import token_label

if TYPE_CHECKING:
    from internals.worker.contract import Neighbours

CHUNK_ROWS = 16384


def embedding_neighbours(loaded: Any, token_id: int, k: int = 10, chunk_rows: int = CHUNK_ROWS) -> Neighbours:
    """The k tokens whose input embedding rows are closest by cosine to token_id's row (the token excluded).

    Returns ids, pieces (readable labels) and cosine (floats, best first). Rows of zero norm have cosine 0.
    """
    weight = loaded.model.get_input_embeddings().weight
    vocab = int(weight.shape[0])
    token_id = int(token_id)
    if not 0 <= token_id < vocab:
        raise UserError(f"token id {token_id} is outside the vocabulary (0..{vocab - 1})")
    if weight.device.type == "meta":
        raise UserError("the embedding matrix is offloaded to disk: load the model without --device auto to see neighbours")
    k = min(int(k), vocab - 1)
    if k < 1:
        raise UserError("k must be at least 1 (and the vocabulary must have more than one token)")
    with translate_oom(), torch.no_grad():
        ids, cosine = _top_cosine(weight, token_id, k, chunk_rows)
    return {"ids": ids, "pieces": [token_label(loaded.tokenizer, i) for i in ids], "cosine": cosine}


def _top_cosine(weight: torch.Tensor, token_id: int, k: int, chunk_rows: int) -> tuple[list[int], list[float]]:
    query = weight[token_id].float()
    query = query / query.norm().clamp_min(1e-12)
    best_values = torch.empty(0, device=weight.device)
    best_ids = torch.empty(0, dtype=torch.long, device=weight.device)
    for start in range(0, weight.shape[0], chunk_rows):
        rows = weight[start:start + chunk_rows].float()
        norms = rows.norm(dim=1)
        cosine = torch.where(norms > 0, rows @ query / norms.clamp_min(1e-12), torch.zeros_like(norms))
        if start <= token_id < start + rows.shape[0]:
            cosine[token_id - start] = -float("inf")
        ids = torch.arange(start, start + rows.shape[0], device=weight.device)
        values = torch.cat([best_values, cosine])
        keep = torch.topk(values, min(k, values.numel()))
        best_ids = torch.cat([best_ids, ids])[keep.indices]
        best_values = keep.values
    return best_ids.cpu().tolist(), best_values.cpu().tolist()
