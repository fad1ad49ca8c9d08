"""Activation patching against exact identities and an independent, unbatched, hand-written implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_support import load_tiny, prompt_ids

from internals.errors import UserError
from internals.inference.capture import capture
from internals.inference.patching import GRIDS, Patch, activation_patching, patched_logit_diffs
from tests_helpers import CancelAfter, Cancelled

KINDS = ["llama", "qwen2", "gpt2", "mixtral", "gemma2", "demo"]


def _pair(loaded, length=9, changed=(2,)):
    clean = prompt_ids(loaded, length)
    vocab = loaded.model.get_input_embeddings().num_embeddings
    corrupt = list(clean)
    for position in changed:
        corrupt[position] = (corrupt[position] + 11) % vocab
    return clean, corrupt


def _raw(result, grid):
    """Undo the normalisation: the patched runs' logit differences."""
    span = result["clean_logit_diff"] - result["corrupt_logit_diff"]
    return result[grid] * span + result["corrupt_logit_diff"]


@pytest.mark.parametrize("kind", KINDS)
def test_identities_last_residual_restores_clean_and_nothing_is_corrupt(tiny_models, kind):
    loaded = load_tiny(tiny_models, kind)
    clean, corrupt = _pair(loaded)
    result = activation_patching(loaded, clean, corrupt, batch_size=4)
    layers, heads = loaded.model.config.num_hidden_layers, loaded.model.config.num_attention_heads
    assert result["residual"].shape == result["attention"].shape == result["mlp"].shape == (layers, len(clean))
    assert result["heads"].shape == (layers, heads)
    assert result["target_id"] != result["corrupt_top_id"]
    raw = _raw(result, "residual")
    assert raw[-1, -1] == pytest.approx(result["clean_logit_diff"], abs=1e-5)
    assert result["residual"][-1, -1] == pytest.approx(1.0, abs=1e-3)
    # positions other than the last cannot matter after the last layer; before the changed token nothing differs
    np.testing.assert_allclose(raw[-1, :-1], result["corrupt_logit_diff"], atol=1e-5)
    np.testing.assert_allclose(raw[:, :2], result["corrupt_logit_diff"], atol=1e-5)
    ids = torch.tensor([corrupt])
    run = capture(loaded.model, torch.tensor([clean]))
    nothing = patched_logit_diffs(loaded.model, ids, run, [None, None, Patch("mlp", 0, 0)],
                                  result["target_id"], result["corrupt_top_id"], batch_size=3)
    np.testing.assert_allclose(nothing, result["corrupt_logit_diff"], atol=1e-5)


def test_clean_equal_to_corrupt_changes_nothing(tiny_models):
    loaded = load_tiny(tiny_models, "qwen2")
    clean = prompt_ids(loaded, 7)
    result = activation_patching(loaded, clean, clean)
    assert result["normalized"] is False and result["clean_logit_diff"] == result["corrupt_logit_diff"]
    for grid in GRIDS:
        np.testing.assert_allclose(result[grid], 0.0, atol=1e-5)


def test_prompts_of_different_lengths_are_a_one_line_error(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    with pytest.raises(UserError) as info:
        activation_patching(loaded, prompt_ids(loaded, 5), prompt_ids(loaded, 6))
    message = str(info.value)
    assert "\n" not in message and "(5)" in message and "(6)" in message and message.count("[") >= 2


def test_bad_grid_and_target_are_errors(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    clean, corrupt = _pair(loaded)
    with pytest.raises(UserError, match="unknown patching grid"):
        activation_patching(loaded, clean, corrupt, grids=["residual", "everything"])
    with pytest.raises(UserError, match="outside the vocabulary"):
        activation_patching(loaded, clean, corrupt, target_id=10**6)


def _reference(model, clean, corrupt, target, other):
    """Independent implementation: one unbatched forward pass per cell, hooks written from scratch here."""
    layers = model.model.layers
    heads = model.config.num_attention_heads
    width = model.config.hidden_size // heads
    stored = {"residual": [], "attention": [], "mlp": [], "heads": []}
    handles = []
    for layer in layers:
        handles.append(
            layer.register_forward_hook(
                lambda m, a, o: stored["residual"].append(o[0].clone() if isinstance(o, tuple) else o.clone())
            )
        )
        handles.append(layer.self_attn.register_forward_hook(lambda m, a, o: stored["attention"].append(o[0].clone())))
        handles.append(layer.mlp.register_forward_hook(lambda m, a, o: stored["mlp"].append(o.clone())))
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(lambda m, a: stored["heads"].append(a[0].clone())))
    with torch.no_grad():
        model(torch.tensor([clean]), use_cache=False)
    for h in handles:
        h.remove()

    def diff(module, kind, replace):
        if kind == "pre":
            handle = module.register_forward_pre_hook(lambda m, a: (replace(a[0].clone()),))
        else:
            def hook(m, a, o):
                if isinstance(o, tuple):
                    return (replace(o[0].clone()), *o[1:])
                return replace(o.clone())
            handle = module.register_forward_hook(hook)
        with torch.no_grad():
            logits = model(torch.tensor([corrupt]), use_cache=False).logits[0, -1]
        handle.remove()
        return float(logits[target] - logits[other])

    def at(source, position):
        def replace(x):
            x[0, position] = source[0, position]
            return x
        return replace

    def head_slice(source, head):
        def replace(x):
            x[0, :, head * width:(head + 1) * width] = source[0, :, head * width:(head + 1) * width]
            return x
        return replace

    T = len(clean)
    out = {}
    for kind, module_of in (
        ("residual", lambda layer: layer),
        ("attention", lambda layer: layer.self_attn),
        ("mlp", lambda layer: layer.mlp),
    ):
        out[kind] = np.array([[diff(module_of(layers[i]), "post", at(stored[kind][i], p)) for p in range(T)]
                              for i in range(len(layers))])
    out["heads"] = np.array([[diff(layers[i].self_attn.o_proj, "pre", head_slice(stored["heads"][i], h))
                              for h in range(heads)] for i in range(len(layers))])
    return out


def test_matches_an_unbatched_hand_written_reference_cell_by_cell(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    clean, corrupt = _pair(loaded, length=8, changed=(1, 5))
    result = activation_patching(loaded, clean, corrupt, batch_size=6)
    reference = _reference(loaded.model, clean, corrupt, result["target_id"], result["corrupt_top_id"])
    for grid in GRIDS:
        np.testing.assert_allclose(_raw(result, grid), reference[grid], atol=1e-5, err_msg=grid)


def test_batched_and_unbatched_agree(tiny_models):
    loaded = load_tiny(tiny_models, "demo")
    clean, corrupt = _pair(loaded, length=10, changed=(3,))
    one = activation_patching(loaded, clean, corrupt, batch_size=1)
    many = activation_patching(loaded, clean, corrupt, batch_size=7)
    span = abs(one["clean_logit_diff"] - one["corrupt_logit_diff"])
    for grid in GRIDS:
        np.testing.assert_allclose(many[grid] * span, one[grid] * span, atol=1e-5, err_msg=grid)


def test_progress_between_batches_and_cancellation(tiny_models):
    loaded = load_tiny(tiny_models, "llama")
    clean, corrupt = _pair(loaded, length=6)
    seen = []
    activation_patching(loaded, clean, corrupt, grids=["residual"], batch_size=4,
                        progress=lambda fraction, message: seen.append(fraction))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) == 2 + 3  # 12 cells in batches of 4
    assert seen == sorted(seen)

    check = CancelAfter(2)
    with pytest.raises(Cancelled):
        activation_patching(loaded, clean, corrupt, grids=["residual"], batch_size=4, check=check)
    assert check.calls == 2


def test_demo_model_induction_is_done_by_a_later_layers_attention(tiny_models):
    """Repeated random tokens: the demo model predicts the repeat; with the first half corrupted, the answer is
    restored at the last position by patching layer >= 1's attention there (the induction heads), not layer 0's.

    Single heads restore little on their own here: the demo model's induction heads in layer 1 are redundant
    (all six attend to the token after the earlier occurrence), so the whole block matters, not one head."""
    loaded = load_tiny(tiny_models, "demo")
    rng = np.random.default_rng(0)
    first, other = rng.integers(100, 4096, 12).tolist(), rng.integers(100, 4096, 12).tolist()
    clean, corrupt = first + first[:-1], other + first[:-1]
    result = activation_patching(loaded, clean, corrupt)
    assert result["target_id"] == first[-1]  # the model continues the repeat
    last = result["attention"][:, -1]
    assert last[0] < 0.1 and last[1:].max() > 0.5
    assert abs(result["residual"][0, -1]) < 0.1 and result["residual"][1, -1] > 0.5  # moved there by layer 1
    from internals.inference.attention import attention_for_layer

    weights = attention_for_layer(loaded, clean, 1)["weights"]  # layer 1's heads: induction from the last token
    assert np.all(weights[:, -1, len(first) - 1] > 0.5)  # the token after the earlier occurrence of the last one
