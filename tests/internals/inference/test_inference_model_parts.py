"""The parts that write into the residual stream, found by shape and name across architectures."""

from __future__ import annotations

import pytest
from inference_support import load_tiny
from torch import nn

from internals.errors import UserError
from internals.inference.model_parts import (
    attention_module,
    attention_writer,
    decoder_layers,
    mlp_module,
    mlp_writer,
    num_heads,
    out_projection,
    projection_weight,
)

# (kind, attention writer, mlp writer, output projection) as named inside each block
EXPECTED = [("llama", "self_attn", "mlp", "o_proj"), ("gpt2", "attn", "mlp", "c_proj"),
            ("mixtral", "self_attn", "mlp", "o_proj"), ("qwen2", "self_attn", "mlp", "o_proj"),
            ("gemma2", "post_attention_layernorm", "post_feedforward_layernorm", "o_proj")]


@pytest.mark.parametrize(("kind", "attention", "mlp", "projection"), EXPECTED)
def test_writers_and_projection(tiny_models, kind, attention, mlp, projection):
    model = load_tiny(tiny_models, kind).model
    block = decoder_layers(model)[0]
    assert attention_writer(block) is getattr(block, attention)
    assert mlp_writer(block) is getattr(block, mlp)
    assert out_projection(attention_module(block)) is getattr(attention_module(block), projection)
    weight = projection_weight(out_projection(attention_module(block)))
    assert weight.shape[0] == model.config.hidden_size and weight.shape[1] % num_heads(model) == 0
    assert mlp_module(block) is block.mlp


def test_missing_parts_are_user_errors():
    with pytest.raises(UserError, match="MLP"):
        mlp_module(nn.Module())
    with pytest.raises(UserError, match="output projection"):
        out_projection(nn.Module())
