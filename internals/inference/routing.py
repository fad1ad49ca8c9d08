"""Which experts a mixture-of-experts model sends each token to, read from the model's own router.

In transformers 5 every MoE family routes through a router module (`MixtralTopKRouter`, `Qwen2MoeTopKRouter`,
`Qwen3MoeTopKRouter`, `OlmoeTopKRouter`, `DeepseekV3TopkRouter`, ...) whose forward returns
`(router_logits, routing_weights, expert_indices)`: the experts the block then runs and the weights it scales
their outputs by. A forward hook on that module reads exactly the model's choice (softmax or sigmoid,
top-k, grouped selection, bias correction, renormalisation and scaling are the architecture's own code),
so nothing here re-implements a router. Shared experts, which every token passes through, are reported
apart (with their gate value when the architecture has one, e.g. Qwen2-MoE's sigmoid `shared_expert_gate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from internals.errors import UserError
from internals.experts.types import LayerRouting, Routing, SharedExperts
from internals.inference.errors import translate_oom
from internals.inference.model_parts import decoder_layers, prompt_tensor
from internals.inference.tokens import token_label

Progress = Callable[[float, str], None]
Check = Callable[[], None]

_SHARED_NAMES = ("shared_expert", "shared_experts")


@dataclass
class Router:
    """One MoE layer's router module, found in the model's own module tree."""

    layer: int
    name: str  # module name of the router
    module: nn.Module
    block: nn.Module  # the sparse MoE block that owns it
    block_name: str
    num_experts: int


def _num_experts(router: nn.Module, block: nn.Module) -> int | None:
    for owner in (router, getattr(block, "experts", None)):
        value = getattr(owner, "num_experts", None) if owner is not None else None
        if isinstance(value, int):
            return value
    weight = getattr(router, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else None


def find_routers(model: nn.Module) -> list[Router]:
    """The router of every MoE decoder layer: a child `gate` or `router` of a block that also has `experts`.

    Only routers that are modules of their own (not a bare `nn.Linear`, whose output is logits the block
    post-processes in code we would have to copy) are accepted: they return the chosen experts themselves.
    """
    found: list[Router] = []
    layers = decoder_layers(model)
    names = {id(module): name for name, module in model.named_modules()}
    for index, layer in enumerate(layers):
        for block_name, block in layer.named_modules():
            if not hasattr(block, "experts"):
                continue
            router = next((m for m in (getattr(block, "gate", None), getattr(block, "router", None))
                           if isinstance(m, nn.Module)), None)
            if router is None or isinstance(router, nn.Linear):
                continue
            experts = _num_experts(router, block)
            if experts is None:
                continue
            found.append(Router(index, names[id(router)], router, block, names[id(block)], experts))
            break
    return found


def _shared_module(block: nn.Module) -> tuple[str, nn.Module] | None:
    for attr in _SHARED_NAMES:
        module = getattr(block, attr, None)
        if isinstance(module, nn.Module):
            return attr, module
    return None


def expert_routing(loaded, prompt_ids: Sequence[int], progress: Progress | None = None,
                   check: Check | None = None) -> Routing:
    """For every MoE layer and token: the experts the model's router chose and their routing weights.

    loaded: an `internals.inference.loading.Loaded`. Returns `Routing` (see the TypedDicts above); per layer the
    load of each expert (tokens routed to it; loads sum to tokens x top_k), its share of the routing weight,
    the experts no token chose, and the shared experts (reported apart, with their gate when there is one).
    Raises UserError for a model without experts, or whose routers do not return their choice.
    """
    report = progress or (lambda fraction, message: None)
    model = loaded.model
    routers = find_routers(model)
    if not routers:
        kind = getattr(getattr(model, "config", None), "model_type", "this model")
        raise UserError(f"this model has no experts ({kind} has no mixture-of-experts layer to route): "
                        "open a MoE model, e.g. `llm-internals --demo moe`")
    ids = prompt_tensor(model, prompt_ids)
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    gates: dict[int, torch.Tensor] = {}
    handles = []

    def on_router(layer: int):
        def hook(_module, _inputs, output):
            if check is not None:
                check()
            if not (isinstance(output, tuple) and len(output) == 3):
                raise UserError(f"the router of layer {layer} does not return (logits, weights, experts); "
                                "routing for this architecture is not supported")
            _logits, weights, indices = output
            captured[layer] = (weights.detach().float().cpu(), indices.detach().cpu())
            report(0.1 + 0.8 * len(captured) / len(routers), f"routing layer {layer}")
        return hook

    def on_shared_gate(layer: int):
        def hook(_module, _inputs, output):
            gates[layer] = torch.sigmoid(output.detach().float()).reshape(-1).cpu()
        return hook

    try:
        for r in routers:
            handles.append(r.module.register_forward_hook(on_router(r.layer)))
            gate = getattr(r.block, "shared_expert_gate", None)
            if isinstance(gate, nn.Module):
                handles.append(gate.register_forward_hook(on_shared_gate(r.layer)))
        report(0.05, "running the prompt")
        with translate_oom(), torch.no_grad():
            model(input_ids=ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    num_tokens = int(ids.shape[1])
    layers: list[LayerRouting] = []
    top_k = 0
    for r in routers:
        if r.layer not in captured:
            continue  # a layer the forward pass did not route (e.g. dense on this model)
        weights, indices = captured[r.layer]
        weights = weights.reshape(num_tokens, -1)
        indices = indices.reshape(num_tokens, -1).long()
        if weights.shape[1] == r.num_experts and indices.shape[1] != r.num_experts:
            weights = weights.gather(1, indices)  # a router returning dense scores over all experts
        top_k = int(indices.shape[1])
        load = np.bincount(indices.reshape(-1).numpy(), minlength=r.num_experts)[: r.num_experts]
        weight_sum = np.zeros(r.num_experts, np.float64)
        np.add.at(weight_sum, indices.reshape(-1).numpy(), weights.reshape(-1).double().numpy())
        total = float(weight_sum.sum())
        shared = _shared_module(r.block)
        layers.append(LayerRouting(
            layer=r.layer, router=r.name,
            experts=indices.tolist(), weights=weights.tolist(),
            load=[int(x) for x in load],
            weight_share=[float(x / total) if total else 0.0 for x in weight_sum],
            unused=[int(e) for e in np.flatnonzero(load == 0)],
            shared=None if shared is None else SharedExperts(
                module=f"{r.block_name}.{shared[0]}",
                gate=gates[r.layer].tolist() if r.layer in gates else None),
        ))
    report(1.0, "done")
    token_ids = [int(t) for t in ids[0].tolist()]
    labels = [token_label(loaded.tokenizer, t) for t in token_ids]
    return Routing(tokens=labels, token_ids=token_ids, num_experts=routers[0].num_experts, top_k=top_k,
                   layers=layers)
