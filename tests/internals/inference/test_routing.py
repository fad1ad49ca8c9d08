"""Routing read from the model's router equals the routing rule of each architecture, applied here to the
MoE block's own input (an independent path: the block input captured by a pre-hook, times the router weight,
then the documented softmax/sigmoid, top-k and normalisation of that family)."""

from __future__ import annotations

import pytest
import torch
from inference_support import load_tiny, prompt_ids

from internals.errors import UserError
from internals.inference.routing import expert_routing

MOE_KINDS = ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3"]


def _reference_choice(kind: str, config, logits: torch.Tensor, router) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices [T, k], weights [T, k]) by the architecture's documented rule, from router logits [T, E]."""
    k = config.num_experts_per_tok
    if kind == "deepseek_v3":  # sigmoid scores, bias-corrected grouped top-k, renormalised and scaled
        scores = logits.sigmoid()
        choice = scores + router.e_score_correction_bias
        groups = config.n_group
        per_group = choice.view(-1, groups, choice.shape[-1] // groups)
        group_score = per_group.topk(2, dim=-1).values.sum(-1)
        keep = torch.zeros_like(group_score).scatter_(1, group_score.topk(config.topk_group, dim=-1).indices, 1)
        mask = keep.unsqueeze(-1).expand_as(per_group).reshape(choice.shape).bool()
        indices = choice.masked_fill(~mask, float("-inf")).topk(k, dim=-1).indices
        weights = scores.gather(1, indices)
        if config.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return indices, weights * config.routed_scaling_factor
    probs = torch.softmax(logits.float(), dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    if kind == "mixtral" or getattr(config, "norm_topk_prob", False):
        weights = weights / weights.sum(-1, keepdim=True)
    return indices, weights


def _by_expert(indices, weights):
    order = torch.as_tensor(indices).argsort(dim=-1)
    return torch.as_tensor(indices).gather(1, order), torch.as_tensor(weights, dtype=torch.float32).gather(1, order)


@pytest.mark.parametrize("kind", MOE_KINDS)
def test_routing_matches_the_architectures_rule(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)
    model, config = loaded.model, loaded.model.config
    ids = prompt_ids(loaded, 16)
    inputs: dict[int, torch.Tensor] = {}
    blocks = {i: layer.mlp for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "experts")}
    handles = [b.register_forward_pre_hook(lambda m, a, i=i: inputs.__setitem__(i, a[0].detach()))
               for i, b in blocks.items()]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        for h in handles:
            h.remove()

    result = expert_routing(loaded, ids)

    assert [entry["layer"] for entry in result["layers"]] == sorted(blocks)
    assert result["top_k"] == config.num_experts_per_tok
    assert result["token_ids"] == ids and len(result["tokens"]) == len(ids)
    for entry in result["layers"]:
        router = blocks[entry["layer"]].gate
        hidden = inputs[entry["layer"]].reshape(len(ids), -1)
        logits = hidden.float() @ router.weight.float().T
        want_idx, want_w = _by_expert(*_reference_choice(kind, config, logits, router))
        got_idx, got_w = _by_expert(entry["experts"], entry["weights"])
        assert torch.equal(got_idx, want_idx), f"layer {entry['layer']}"
        torch.testing.assert_close(got_w, want_w.float(), atol=1e-5, rtol=1e-5)
        assert sum(entry["load"]) == len(ids) * result["top_k"]
        counts = torch.bincount(want_idx.reshape(-1), minlength=result["num_experts"])
        assert entry["load"] == counts.tolist()
        assert entry["unused"] == [e for e, n in enumerate(counts.tolist()) if n == 0]
        assert sum(entry["weight_share"]) == pytest.approx(1.0)
        share = torch.zeros(result["num_experts"], dtype=torch.float64).index_add_(
            0, want_idx.reshape(-1), want_w.reshape(-1).double())
        assert entry["weight_share"] == pytest.approx((share / share.sum()).tolist(), abs=1e-6)


@pytest.mark.parametrize("kind", ["qwen2_moe", "deepseek_v3"])
def test_shared_experts_are_reported_apart(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)
    ids = prompt_ids(loaded, 8)
    result = expert_routing(loaded, ids)
    for entry in result["layers"]:
        shared = entry["shared"]
        assert shared is not None and shared["module"].endswith(("shared_expert", "shared_experts"))
        block = loaded.model.model.layers[entry["layer"]].mlp
        if kind == "qwen2_moe":  # the sigmoid gate the block scales the shared expert by, per token
            captured = {}
            handle = block.register_forward_pre_hook(lambda m, a, c=captured: c.setdefault("x", a[0].detach()))
            with torch.no_grad():
                loaded.model(input_ids=torch.tensor([ids]), use_cache=False)
            handle.remove()
            want = torch.sigmoid(captured["x"].reshape(len(ids), -1) @ block.shared_expert_gate.weight.T).reshape(-1)
            torch.testing.assert_close(torch.tensor(shared["gate"]), want, atol=1e-6, rtol=1e-5)
        else:
            assert shared["gate"] is None
    assert all(e["shared"] is None for e in expert_routing(load_tiny(tiny_models, "mixtral"), ids)["layers"])


def test_dense_model_has_no_experts(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    with pytest.raises(UserError, match="this model has no experts"):
        expert_routing(loaded, prompt_ids(loaded, 4))


def test_progress_and_cancel(tiny_models):
    loaded = load_tiny(tiny_models, "mixtral")
    seen = []
    expert_routing(loaded, prompt_ids(loaded, 4), progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)

    class Cancelled(Exception):
        pass

    def cancel():
        raise Cancelled

    with pytest.raises(Cancelled):
        expert_routing(loaded, prompt_ids(loaded, 4), check=cancel)
