"""Find the parts of a loaded transformers causal LM that the inference views need, for any architecture.

Llama-like models keep their decoder layers in `model.model.layers`, GPT-2 in `model.transformer.h`, others
elsewhere; the final norm is `norm`, `ln_f` or `final_layernorm`. Instead of a table per architecture these
helpers look for the shapes every decoder-only model has: one long ModuleList of identical blocks, an
attention child in each block, and a norm as the base model's last normalising child.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from internals.errors import UserError

_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "norm_f", "final_norm")


def text_config(model: nn.Module):
    """The config that describes the decoder (multimodal configs nest it)."""
    config = model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks: the shallowest ModuleList whose children all share one class.

    Shallowest, not longest: a mixture-of-experts block may hold a longer list of experts deeper down.
    """
    candidates = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and len({type(child) for child in module}) == 1:
            candidates.append((name.count("."), -len(module), name, module))
    if not candidates:
        raise UserError(f"{type(model).__name__} has no list of decoder layers: this view needs a decoder-only transformer")
    return min(candidates, key=lambda item: item[:3])[3]


def num_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


def resolve_layer(model: nn.Module, layer: int) -> int:
    """A layer index in range; negative indices count from the end (-1 is the last layer)."""
    count = num_layers(model)
    index = layer + count if layer < 0 else layer
    if not 0 <= index < count:
        raise UserError(f"layer {layer} is out of range: the model has {count} layers (0..{count - 1}, or -1 for the last)")
    return index


def _named_child(block: nn.Module, names: tuple[str, ...]) -> nn.Module | None:
    """The first of `names` that is a module attribute of `block` (the usual names of a part), if any."""
    for name in names:
        child = getattr(block, name, None)
        if isinstance(child, nn.Module):
            return child
    return None


def attention_module(block: nn.Module) -> nn.Module:
    """The self-attention child of a decoder block (by the usual names, else by class name)."""
    child = _named_child(block, _ATTENTION_NAMES)
    if child is not None:
        return child
    for name, child in block.named_children():
        if type(child).__name__.endswith("Attention") and "cross" not in name.lower():
            return child
    raise UserError(f"cannot find the attention module inside {type(block).__name__}: this architecture is not supported")


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm applied to the residual stream before the LM head (None when the model has none)."""
    base = getattr(model, "base_model", model)
    for name in _FINAL_NORM_NAMES:
        child = getattr(base, name, None)
        if isinstance(child, nn.Module):
            return child
    norms = [child for _, child in base.named_children() if "norm" in type(child).__name__.lower()]
    return norms[-1] if norms else None


def lm_head(model: nn.Module) -> nn.Module:
    head = model.get_output_embeddings()  # type: ignore[operator]  # torch types dynamic attributes as Tensor | Module
    if head is None:
        raise UserError(f"{type(model).__name__} has no LM head: load it as a causal language model")
    return head


def max_positions(model: nn.Module) -> int | None:
    """The longest prompt the model's position encoding covers (None when the config does not say)."""
    config = text_config(model)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def vocab_size(model: nn.Module) -> int:
    embedding = model.get_input_embeddings()  # type: ignore[operator]  # torch types dynamic attributes as Tensor | Module
    return int(embedding.num_embeddings)


def input_device(model: nn.Module) -> torch.device:
    """Where input ids must go: the embedding's execution device (accelerate may have offloaded its weight)."""
    embedding = model.get_input_embeddings()  # type: ignore[operator]  # torch types dynamic attributes as Tensor | Module
    hook = getattr(embedding, "_hf_hook", None)
    device = getattr(hook, "execution_device", None)
    if device is not None:
        return torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    return embedding.weight.device


def prompt_tensor(model: nn.Module, prompt_ids: Sequence[int]) -> torch.Tensor:
    """Check a prompt's ids against the model and return them as a [1, T] tensor on the input device."""
    ids = [int(i) for i in prompt_ids]
    if not ids:
        raise UserError("the prompt is empty: type some text first")
    limit = max_positions(model)
    if limit is not None and len(ids) > limit:
        raise UserError(f"the prompt has {len(ids)} tokens but the model handles at most {limit} positions: shorten it")
    vocab = vocab_size(model)
    bad = next((i for i in ids if not 0 <= i < vocab), None)
    if bad is not None:
        raise UserError(f"token id {bad} is outside the model's vocabulary of {vocab}: the tokenizer does not match the model")
    return torch.tensor([ids], dtype=torch.long, device=input_device(model))


def first_tensor(output) -> torch.Tensor | None:
    """A module's main output: the tensor itself, or the first tensor of a tuple/ModelOutput."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((item for item in output if isinstance(item, torch.Tensor)), None)
    if isinstance(output, dict):
        return next((item for item in output.values() if isinstance(item, torch.Tensor)), None)
    return None


def tensor_attr(module: nn.Module, name: str) -> torch.Tensor | None:
    """`module.<name>` when it is a tensor (a weight, a bias), else None (absent, None or a submodule)."""
    value = getattr(module, name, None)
    return value if isinstance(value, torch.Tensor) else None


def output_tensor(output: Any) -> torch.Tensor:
    """`first_tensor` of an output that always holds one (a decoder layer's, a block's): raises when it does not."""
    tensor = first_tensor(output)
    if tensor is None:
        raise RuntimeError(f"expected a tensor in the module's output, got {type(output).__name__}")
    return tensor


def hook_hidden_states(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor:
    """The hidden states a forward pre-hook registered `with_kwargs=True` sees: the first argument or the
    `hidden_states` keyword."""
    hidden = args[0] if args else kwargs.get("hidden_states")
    if not isinstance(hidden, torch.Tensor):
        raise RuntimeError(f"expected the hidden states as a tensor, got {type(hidden).__name__}")
    return hidden


# --- the parts that write into the residual stream (activations, patching, attribution) ----------------

_MLP_NAMES = ("mlp", "feed_forward", "block_sparse_moe", "moe", "ffn")
_OUT_PROJ_NAMES = ("o_proj", "c_proj", "out_proj", "dense", "o_dense", "o")


def mlp_module(block: nn.Module) -> nn.Module:
    """The MLP (or mixture-of-experts) child of a decoder block (by the usual names, else by class name)."""
    child = _named_child(block, _MLP_NAMES)
    if child is not None:
        return child
    for _, child in block.named_children():
        cls = type(child).__name__
        if cls.endswith(("MLP", "Mlp", "MoE", "MoeBlock", "FeedForward")):
            return child
    raise UserError(f"cannot find the MLP inside {type(block).__name__}: this architecture is not supported")


def attention_writer(block: nn.Module) -> nn.Module:
    """The module whose output the block adds to the residual stream for its attention: the attention itself,
    or its post-attention norm where the block normalises the attention output before adding it (Gemma 2/3:
    they have both `post_attention_layernorm` and `pre_feedforward_layernorm`; in Llama-like blocks
    `post_attention_layernorm` is the MLP's input norm and must not be taken)."""
    post = getattr(block, "post_attention_layernorm", None)
    if isinstance(post, nn.Module) and isinstance(getattr(block, "pre_feedforward_layernorm", None), nn.Module):
        return post
    return attention_module(block)


def mlp_writer(block: nn.Module) -> nn.Module:
    """The module whose output the block adds to the residual stream for its MLP (its post-MLP norm if any)."""
    post = getattr(block, "post_feedforward_layernorm", None)
    return post if isinstance(post, nn.Module) else mlp_module(block)


def out_projection(attention: nn.Module) -> nn.Module:
    """The attention's output projection (o_proj, GPT-2's c_proj, ...): its input holds the heads' outputs side
    by side, [..., heads * head_dim], which is where per-head analyses hook."""
    for name in _OUT_PROJ_NAMES:
        child = getattr(attention, name, None)
        if isinstance(child, nn.Module) and (isinstance(child, nn.Linear) or type(child).__name__ == "Conv1D"):
            return child
    raise UserError(f"cannot find the output projection of {type(attention).__name__}: per-head analyses are not "
                    "supported for this architecture")


def projection_weight(projection: nn.Module) -> torch.Tensor:
    """The projection's weight as [out, in] (GPT-2's Conv1D stores it as [in, out])."""
    weight = tensor_attr(projection, "weight")
    if weight is None:
        raise UserError(f"{type(projection).__name__} has no weight tensor")
    return weight.t() if type(projection).__name__ == "Conv1D" else weight


def num_heads(model: nn.Module) -> int:
    """Query heads per attention layer."""
    config = text_config(model)
    for key in ("num_attention_heads", "n_head", "num_heads"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UserError(f"{type(model).__name__}'s config does not say how many attention heads it has")
