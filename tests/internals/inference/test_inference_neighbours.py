"""Embedding neighbours against a brute-force cosine over the whole matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_support import load_tiny

from internals.errors import UserError
from internals.inference.neighbours import embedding_neighbours


@pytest.mark.parametrize("chunk_rows", [7, 16384])
def test_neighbours_match_brute_force_cosine(tiny_models, chunk_rows):
    loaded = load_tiny(tiny_models, "qwen2")
    weight = loaded.model.get_input_embeddings().weight.detach()
    cosine = torch.nn.functional.cosine_similarity(weight, weight[42][None], dim=1)
    cosine[42] = -2
    expected = torch.topk(cosine, 6)
    got = embedding_neighbours(loaded, 42, 6, chunk_rows=chunk_rows)
    assert 42 not in got["ids"] and len(got["pieces"]) == 6
    assert got["ids"] == expected.indices.tolist()
    np.testing.assert_allclose(got["cosine"], expected.values.numpy(), atol=1e-5)


def test_neighbours_reject_unknown_ids(tiny_models):
    with pytest.raises(UserError, match="outside the vocabulary"):
        embedding_neighbours(load_tiny(tiny_models, "llama"), 256, 3)
