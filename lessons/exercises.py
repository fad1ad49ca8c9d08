"""Answers of the predict-then-check exercises, computed live from the open model; and checking a typed guess.

A lesson's ```exercise block (see `lessons.catalog.Exercise`) names an answer key; `ANSWERS[key]` computes the
answer for the open model, never from a number written in the lesson. Two kinds of answer function:

- needs="facts": from `lesson_facts(summary, tree)` and the tree (cheap, torch-free: the explorer can call it
  in the UI process);
- needs="model": from the loaded weights (a forward pass), given an `OpenedModel` as `opened`; it imports torch
  lazily, so it belongs in the model worker.

The pane asks `compute_answer(exercise, facts, tree, opened)` for the `LiveAnswer`, then
`check_answer(exercise, typed, live)` for (correct, the answer as text, a one-line explanation).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lessons.catalog import Exercise
from lessons.inference_math import absmax_quantize, pass_at_k, softmax_t, top_p_ids

if TYPE_CHECKING:
    import numpy as np

    from internals.inference.result_types import PatchingResult

__all__ = ["LiveAnswer", "CheckResult", "AnswerInputs", "AnswerSpec", "ANSWERS", "compute_answer", "check_answer",
           "AnswerUnavailable", "parse_guess", "bpe_merges", "grpo_advantages", "previous_token_scores",
           "ONE_HEAD_TEXT", "PROJECTIONS", "layer0_kurtosis", "SINK_TEXT", "SHARE_BINS",
           "repeated_random_pair", "induction_patching", "sink_shares", "initial_matrix", "matrix_spikes"]


@dataclass(frozen=True)
class LiveAnswer:
    """value: int | float | list[int] | str; tolerance: relative (numbers; 0 = exact); explanation: one line."""

    value: Any
    explanation: str
    tolerance: float = 0.0
    unit: str = ""

    def as_text(self) -> str:
        v = self.value
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(str(x) for x in v) + "]"
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, int):
            text = f"{v:,}"
        elif isinstance(v, float):
            text = f"{v:.4g}"
        else:
            text = str(v)
        return f"{text} {self.unit}".strip()


@dataclass(frozen=True)
class CheckResult:
    correct: bool
    answer: str  # the live answer, as text
    explanation: str
    problem: str | None = None  # the guess could not be read (e.g. "type a number"); correct is False


@dataclass
class AnswerInputs:
    facts: Mapping[str, Any]
    tree: Sequence[Mapping[str, Any]] = ()
    opened: Any = None
    given: Mapping[str, str] = field(default_factory=dict)

    def node(self, name: str | None) -> Mapping[str, Any]:
        for n in self.tree:
            if n.get("name") == name:
                return n
        raise LookupError(f"no tree node named {name!r}")

    def numel_under(self, prefix: str | None) -> int:
        """Parameters (tied ones once) whose name starts with `prefix` + '.'."""
        if not prefix:
            raise LookupError("no such module in this model")
        return sum(int(n.get("numel") or math.prod(n.get("shape") or [0])) for n in self.tree
                   if n.get("kind") == "parameter" and not n.get("tied_to")
                   and str(n.get("name", "")).startswith(prefix + "."))


@dataclass(frozen=True)
class AnswerSpec:
    key: str
    needs: str  # "facts" or "model"
    fn: Callable[[AnswerInputs], LiveAnswer]


class AnswerUnavailable(LookupError):
    """The answer cannot be computed for the open model (e.g. a facts-only exercise on a model without heads)."""


def _fact(inputs: AnswerInputs, name: str) -> Any:
    value = inputs.facts.get(name)
    if value is None:
        raise AnswerUnavailable(f"{name} is not known for this model")
    return value


def _shape(inputs: AnswerInputs, fact_name: str) -> list[int]:
    return [int(x) for x in inputs.node(_fact(inputs, fact_name)).get("shape") or []]


# --- pure computations the tests also use -------------------------------------------------------------------------
def bpe_merges(corpus: str, count: int) -> list[tuple[str, str]]:
    """The first `count` merges of character-level BPE on the whitespace-separated words of `corpus`.

    Each step merges the most frequent adjacent pair; ties go to the pair seen first reading the corpus left to
    right (the convention of the lesson's worked example)."""
    words = [list(w) for w in corpus.split()]
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        counts: dict[tuple[str, str], int] = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1  # dict keeps first-seen order for ties
        if not counts:
            break
        best = max(counts, key=lambda p: counts[p])  # max returns the first maximal key
        merges.append(best)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if (w[i], w[i + 1]) == best:
                    w[i:i + 2] = [w[i] + w[i + 1]]
                i += 1
    return merges


def grpo_advantages(rewards: Sequence[float]) -> list[float]:
    """(r - mean) / sample std, as TRL's GRPOTrainer (all zero when the std is 0)."""
    std = statistics.stdev(rewards) if len(rewards) > 1 else 0.0
    mean = statistics.fmean(rewards)
    return [0.0 if std < 1e-12 else (r - mean) / std for r in rewards]


#: The text the previous-token exercise runs on (code, so that the demo model knows it).
PREVIOUS_TOKEN_TEXT = ("def parse_args(argv):\n    parser = argparse.ArgumentParser()\n"
                       "    parser.add_argument('--verbose', action='store_true')\n    return parser.parse_args(argv)\n")


def previous_token_scores(opened: Any, text: str = PREVIOUS_TOKEN_TEXT) -> list[list[float]]:
    """[layer][head]: mean attention weight from each position to the one before (positions 1..T-1).

    Loads the open model (float32, CPU) and captures each layer's weights with the engine's attention hook."""
    from internals.inference.attention import attention_for_layer
    from internals.inference.loading import load_for_inference

    loaded = load_for_inference(opened.source, device="cpu", dtype="float32")
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    layers = int(opened.summary().get("num_layers") or len(loaded.model.model.layers))
    scores = []
    for layer in range(layers):
        w = attention_for_layer(loaded, ids, layer)["weights"]  # [heads, T, T]
        t = w.shape[-1]
        scores.append([float(sum(w[h, i, i - 1] for i in range(1, t)) / (t - 1)) for h in range(w.shape[0])])
    return scores


# --- the answers ---------------------------------------------------------------------------------------------------
def _params_per_layer(x: AnswerInputs) -> LiveAnswer:
    n = x.numel_under(_fact(x, "layer_node_first"))
    return LiveAnswer(n, f"attention {x.facts.get('attn_params_per_layer') or 0:,} + MLP "
                         f"{x.facts.get('mlp_params_per_layer') or 0:,} + norms {x.facts.get('norm_params_per_layer') or 0:,},"
                         " summed over the tensors of layer 0")


def _bpe_merge(x: AnswerInputs) -> LiveAnswer:
    corpus, k = x.given.get("corpus", ""), int(x.given.get("merge", "1"))
    merges = bpe_merges(corpus, k)
    if len(merges) < k:
        raise AnswerUnavailable("the corpus runs out of pairs")
    a, b = merges[-1]
    history = ", ".join(f"{p}+{q}" for p, q in merges[:-1])
    return LiveAnswer(f"{a}+{b}", f"after {history or 'no merges'}, {a}+{b} is the most frequent pair "
                                  "(ties go to the pair seen first)")


def _embed_rows(x: AnswerInputs) -> LiveAnswer:
    rows = _shape(x, "embed_weight")[0]
    return LiveAnswer(rows, "one row per token id: the config's vocab_size, padding rows included")


def _q_shape(x: AnswerInputs) -> LiveAnswer:
    return LiveAnswer(_shape(x, "q_weight_first"), "[n_h·d_head, d]: PyTorch stores a Linear weight as [out, in]")


def _k_shape(x: AnswerInputs) -> LiveAnswer:
    return LiveAnswer(_shape(x, "k_weight_first"), "[n_kv·d_head, d]: only the key/value heads, not the query heads")


def _kv_bytes(x: AnswerInputs) -> LiveAnswer:
    L, kv, dh = (int(_fact(x, k)) for k in ("num_layers", "num_key_value_heads", "head_dim"))
    return LiveAnswer(2 * L * kv * dh * 2, f"2 (K and V) × {L} layers × {kv} KV heads × {dh} × 2 bytes",
                      unit="bytes")


def _rope_pairs(x: AnswerInputs) -> LiveAnswer:
    dh = int(_fact(x, "head_dim"))
    return LiveAnswer(dh // 2, f"d_head = {dh} numbers form {dh // 2} planes, each rotated at its own frequency")


def _mlp_params(x: AnswerInputs) -> LiveAnswer:
    n = x.numel_under(_fact(x, "mlp_node_first"))
    return LiveAnswer(n, "3·d·d_ff for gate, up and down (SwiGLU), plus any biases")


def _final_norm(x: AnswerInputs) -> LiveAnswer:
    shape = _shape(x, "final_norm_weight")
    return LiveAnswer(math.prod(shape), "one gain per channel of the residual stream (RMSNorm has no bias)")


def _residual_writes(x: AnswerInputs) -> LiveAnswer:
    L = int(_fact(x, "num_layers"))
    return LiveAnswer(2 * L, f"each of the {L} layers adds twice: attention's output, then the MLP's")


def _lm_head_shape(x: AnswerInputs) -> LiveAnswer:
    return LiveAnswer(_shape(x, "lm_head_weight"), "[V, d]: one row of logit weights per vocabulary id")


COMPONENT_CHOICES = ("embedding", "attention", "mlp", "norm", "lm_head")


def _largest_component(x: AnswerInputs) -> LiveAnswer:
    sizes = {c: x.facts.get(f"params_{c}") or 0 for c in COMPONENT_CHOICES}
    best = max(sizes, key=lambda c: sizes[c])
    return LiveAnswer(best, f"{best} holds {sizes[best]:,} parameters ({x.facts.get(f'params_{best}_pct') or 0:.1f}%)")


def _best_previous_token_layer(x: AnswerInputs) -> LiveAnswer:
    if x.opened is None:
        raise AnswerUnavailable("this answer needs the model's weights (run it in the worker)")
    scores = previous_token_scores(x.opened)
    best = max(((layer, head) for layer in range(len(scores)) for head in range(len(scores[layer]))),
               key=lambda lh: scores[lh[0]][lh[1]])
    return LiveAnswer(best[0], f"layer {best[0]} head {best[1]} puts {scores[best[0]][best[1]]:.0%} of each row on "
                               "the previous token, on a short Python snippet")


def _uniform_loss(x: AnswerInputs) -> LiveAnswer:
    V = int(_fact(x, "vocab_size"))
    return LiveAnswer(math.log(V), f"a random model is near uniform over {V:,} ids: loss ≈ ln {V}", tolerance=0.05,
                      unit="nats")


def _teacher_logits(x: AnswerInputs) -> LiveAnswer:
    V = int(_fact(x, "vocab_size"))
    return LiveAnswer(V, "one probability per vocabulary row, at every position of every sample")


def _full_ft_gb(x: AnswerInputs) -> LiveAnswer:
    n = int(_fact(x, "total_parameters"))
    return LiveAnswer(n * 16 / 1e9, f"16 bytes × {n:,} parameters (bf16 weights and grads, fp32 master, two moments)",
                      tolerance=0.1, unit="GB")


def _ppo_gb(x: AnswerInputs) -> LiveAnswer:
    n = int(_fact(x, "total_parameters"))
    return LiveAnswer(4 * 2 * n / 1e9, "policy, value model, reference and reward model: 4 × 2 bytes per parameter",
                      tolerance=0.1, unit="GB")


def _grpo_advantage(x: AnswerInputs) -> LiveAnswer:
    rewards = [float(r) for r in x.given.get("rewards", "").split(",") if r.strip()]
    i = int(x.given.get("index", "0"))
    adv = grpo_advantages(rewards)
    return LiveAnswer(adv[i], f"(r − mean) / sample std = ({rewards[i]:g} − {statistics.fmean(rewards):g}) / "
                              f"{statistics.stdev(rewards):.3f}", tolerance=0.02)


def _dpo_initial_loss(x: AnswerInputs) -> LiveAnswer:
    return LiveAnswer(-math.log(1 / (1 + math.exp(-0.0))), "policy = reference at step 0, so the margin is 0 and "
                      "the loss is −log σ(0) = ln 2", tolerance=0.01, unit="nats")


def _lora_r16_all(x: AnswerInputs) -> LiveAnswer:
    n = int(_fact(x, "lora_r16_all"))
    return LiveAnswer(n, "16·(in + out) for each of the projections of every layer, summed over their shapes")


def _lora_peft_pct(x: AnswerInputs) -> LiveAnswer:
    return LiveAnswer(float(_fact(x, "lora_r16_all_peft_pct")),
                      "trainable / (frozen + trainable): peft counts the adapters in the total", tolerance=0.02,
                      unit="%")


def _qlora_gib(x: AnswerInputs) -> LiveAnswer:
    return LiveAnswer(float(_fact(x, "qlora_base_gib")),
                      f"only Linear weights go to 4 bits (+{_fact(x, 'qlora_constants_bits'):.3f} bit of constants); "
                      f"{_fact(x, 'qlora_kept_16bit_pct'):.0f}% of the parameters stay 16-bit", tolerance=0.1,
                      unit="GiB")


# --- Part 3: inference, quantization, reasoning ----------------------------------------------------------------
def _floats(x: AnswerInputs, key: str) -> list[float]:
    return [float(v) for v in x.given.get(key, "").split(",") if v.strip()]


def _kv_32k_mib(x: AnswerInputs) -> LiveAnswer:
    L, kv, dh = (int(_fact(x, k)) for k in ("num_layers", "num_key_value_heads", "head_dim"))
    return LiveAnswer(2 * L * kv * dh * 2 * 32768 / 2**20, f"2 × {L} layers × {kv} KV heads × {dh} × 2 bytes × 32,768 "
                      "tokens", tolerance=0.02, unit="MiB")


def _pass_at_k(x: AnswerInputs) -> LiveAnswer:
    n, c, k = (int(x.given[key]) for key in ("n", "c", "k"))
    return LiveAnswer(pass_at_k(n, c, k), f"1 − C({n - c}, {k}) / C({n}, {k}): the chance that {k} of the {n} samples, "
                      "drawn without replacement, are not all wrong", tolerance=0.01)


def _lens_rows(x: AnswerInputs) -> LiveAnswer:
    L = int(_fact(x, "num_layers"))
    return LiveAnswer(L + 1, f"the embedding output, then the residual stream after each of the {L} layers")


def _temperature_prob(x: AnswerInputs) -> LiveAnswer:
    logits, t, i = _floats(x, "logits"), float(x.given["T"]), int(x.given.get("index", "0"))
    return LiveAnswer(softmax_t(logits, t)[i], f"softmax(z / {t:g}): dividing by T < 1 stretches the gaps between "
                      "logits, so the top token gains", tolerance=0.01)


def _top_p_size(x: AnswerInputs) -> LiveAnswer:
    probs = softmax_t(_floats(x, "logits"), 1.0)
    p = float(x.given["p"])
    kept = top_p_ids(probs, p)
    cum = ", ".join(f"{sum(sorted(probs, reverse=True)[:n + 1]):.3f}" for n in range(len(kept)))
    return LiveAnswer(len(kept), f"cumulative mass of the most likely tokens: {cum}; the first to reach {p:g} ends "
                                 "the nucleus")


def _absmax_int8(x: AnswerInputs) -> LiveAnswer:
    values, i = _floats(x, "values"), int(x.given.get("index", "0"))
    q, scale = absmax_quantize(values, 8)
    return LiveAnswer(q[i], f"scale = max|x| / 127 = {scale:.4g}; round({values[i]:g} / {scale:.4g}) = {q[i]}: the "
                            "outlier sets the step for everything else")


#: The projections of a Llama/Qwen2 layer, as exercise choices.
PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")


def layer0_kurtosis(opened: Any, facts: Mapping[str, Any]) -> dict[str, float]:
    """Excess kurtosis of each projection weight of layer 0, from the engine's statistics (`iter_stats`)."""
    names = {c: facts.get(f"{c}_weight_first") for c in PROJECTIONS}
    names = {c: n for c, n in names.items() if n and n.endswith(f"{c}_proj.weight")}
    if not names:
        raise AnswerUnavailable("this model has no separate q/k/v/o/gate/up/down projections")
    stats = {s["name"]: s for s in opened.iter_stats(list(names.values()))}
    return {c: float(stats[n]["kurtosis"]) for c, n in names.items()}


def _largest_kurtosis(x: AnswerInputs) -> LiveAnswer:
    if x.opened is None:
        raise AnswerUnavailable("this answer needs the model's weights (run it in the worker)")
    kurt = layer0_kurtosis(x.opened, x.facts)
    best = max(kurt, key=lambda c: kurt[c])
    listing = ", ".join(f"{c} {v:.2f}" for c, v in sorted(kurt.items(), key=lambda cv: -cv[1]))
    return LiveAnswer(best, f"excess kurtosis of layer 0's projections: {listing}")


def _experts_per_mlp(x: AnswerInputs) -> LiveAnswer:
    n = _int_or_none(x.facts.get("num_experts"))
    if n:
        return LiveAnswer(n, f"{n} routed experts, {x.facts.get('num_experts_per_token') or '?'} chosen per token")
    if x.facts.get("mlp_params_per_layer") is None and x.facts.get("mlp_node_first") is None:
        raise AnswerUnavailable("this model's MLP is unknown")
    return LiveAnswer(1, "a dense model: num_experts is null, every token goes through the one MLP of each layer")


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


#: The prompt of the one-head exercise and demo (code, so that the demo model knows it).
ONE_HEAD_TEXT = "def add(a, b):\n    return a + b"


def _head_argmax(x: AnswerInputs) -> LiveAnswer:
    if x.opened is None:
        raise AnswerUnavailable("this answer needs the model's weights (run it in the worker)")
    from internals.inference.loading import load_for_inference
    from lessons.demos._common import encode
    from lessons.demos.one_head import head_numbers

    loaded = load_for_inference(x.opened.source, device="cpu", dtype="float32")
    ids = encode(loaded.tokenizer, ONE_HEAD_TEXT)
    n = head_numbers(loaded, ids, int(x.given.get("layer", "0")), int(x.given.get("head", "0")), -1)
    best = int(n["weights"].argmax())
    return LiveAnswer(best, f"weight {float(n['weights'][best]):.2f} on position {best} (positions count from 0; the "
                            f"query is position {n['position']})")


# --- interpretability in practice: patching and attention sinks -------------------------------------------------
#: The prompt of the attention-sink exercise (code, so that the demo model knows it).
SINK_TEXT = "import os\nimport sys\n\n\ndef main(argv):\n    print(os.getcwd(), argv)\n    return 0\n"
#: Share of the clean logit difference a patch must restore to fall in each bin (the choices of the head exercise).
SHARE_BINS = ("under 25%", "25-50%", "50-75%", "over 75%")


def repeated_random_pair(vocab_size: int, tokens: int = 12, seed: int = 0) -> tuple[list[int], list[int]]:
    """(clean, corrupt) ids of the patching exercises: clean is `tokens` random ids, then the same ids again without
    the last one (so the model's answer is that last id, by induction); corrupt replaces the first copy with other
    random ids. numpy's default_rng(seed), ids from min(100, V/2) up, away from the special tokens."""
    import numpy as np

    rng = np.random.default_rng(seed)
    low = min(100, vocab_size // 2)
    first, other = rng.integers(low, vocab_size, tokens).tolist(), rng.integers(low, vocab_size, tokens).tolist()
    return first + first[:-1], other + first[:-1]


def _loaded(x: AnswerInputs) -> Any:
    if x.opened is None:
        raise AnswerUnavailable("this answer needs the model's weights (run it in the worker)")
    from internals.inference.loading import load_for_inference

    return load_for_inference(x.opened.source, device="cpu", dtype="float32")


def induction_patching(opened_or_loaded: Any, given: Mapping[str, str]) -> PatchingResult:
    """The engine's activation patching (attention and heads grids) on the repeated random-token pair of `given`
    (tokens, seed): a `PatchingResult`."""
    from internals.inference.patching import activation_patching

    loaded = opened_or_loaded
    vocab = int(loaded.model.get_input_embeddings().num_embeddings)
    clean, corrupt = repeated_random_pair(vocab, int(given.get("tokens", "12")), int(given.get("seed", "0")))
    return activation_patching(loaded, clean, corrupt, grids=("attention", "heads"))


def _patching_grids(x: AnswerInputs) -> tuple[np.ndarray, np.ndarray]:
    """The attention and heads grids of `induction_patching` (it always asks for both)."""
    result = induction_patching(_loaded(x), x.given)
    attention, heads = result["attention"], result["heads"]
    if attention is None or heads is None:
        raise RuntimeError("activation patching returned no attention or heads grid")
    return attention, heads


def _patching_best_layer(x: AnswerInputs) -> LiveAnswer:
    attention, _ = _patching_grids(x)
    last = [float(v) for v in attention[:, -1]]
    best = max(range(len(last)), key=lambda layer: last[layer])
    listing = ", ".join(f"layer {layer} {v:.0%}" for layer, v in enumerate(last))
    return LiveAnswer(best, f"share of the clean logit difference restored by each layer's attention output at the last "
                            f"position: {listing}")


def _best_head_share(x: AnswerInputs) -> LiveAnswer:
    attention, head_grid = _patching_grids(x)
    layer = max(range(attention.shape[0]), key=lambda i: float(attention[i, -1]))
    heads = [float(v) for v in head_grid[layer]]
    head = max(range(len(heads)), key=lambda h: heads[h])
    share = heads[head]
    bin_ = SHARE_BINS[min(3, max(0, int(share * 4)))] if share < 1 else SHARE_BINS[-1]
    return LiveAnswer(bin_, f"layer {layer}'s best single head ({head}) restores {share:.0%}; its whole attention output "
                            f"at the last position restores {float(attention[layer, -1]):.0%}")


def sink_shares(loaded: Any, layer: int, text: str = SINK_TEXT) -> list[float]:
    """Per head of `layer`: the engine's attention-sink share (mean weight on position 0 over queries >= 1)."""
    from internals.inference.activations import residual_activations

    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    return [float(v) for v in residual_activations(loaded, ids)["sink_share"][layer]]


def _sink_head(x: AnswerInputs) -> LiveAnswer:
    layer = int(x.given.get("layer", "0"))
    shares = sink_shares(_loaded(x), layer)
    best = max(range(len(shares)), key=lambda h: shares[h])
    listing = ", ".join(f"head {h} {v:.0%}" for h, v in enumerate(shares))
    return LiveAnswer(best, f"mean attention weight on the first token, over query positions 1..T-1, in layer {layer}: "
                            f"{listing}")


def initial_matrix(source: Any, name: str) -> Any:
    """The untrained values (float64 numpy) of parameter `name` of the demo model at `source`, rebuilt from the
    seed its training started from (`init.json`: the recipe, not the weights, is shipped)."""
    from pathlib import Path

    folder = Path(source.spec) if getattr(source, "kind", None) == "folder" else Path(str(source))
    if not (folder / "init.json").is_file():
        raise AnswerUnavailable("only the demo model ships the recipe of its initial weights (init.json)")
    from internals.demo_model_training.init_weights import initial_model

    params = dict(initial_model(folder).named_parameters())
    return params[name].detach().double().numpy()


def matrix_spikes(matrix: Any) -> int:
    """Eigenvalues of WᵀW beyond the Marchenko–Pastur spike threshold (the engine's rule) of a numpy matrix."""
    import numpy as np

    from internals.spectrum.marchenko_pastur import count_spikes

    w = np.asarray(matrix, dtype=np.float64)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    return count_spikes(np.linalg.eigvalsh(gram), float(w.var()), *w.shape)


def _q_first(x: AnswerInputs) -> str:
    if x.opened is None:
        raise AnswerUnavailable("this answer needs the model's weights (run it in the worker)")
    return str(_fact(x, "q_weight_first"))


def _spikes_initial(x: AnswerInputs) -> LiveAnswer:
    name = _q_first(x)
    n = matrix_spikes(initial_matrix(x.opened.source, name))
    return LiveAnswer(n, f"{name} at initialisation (rebuilt from init.json's seed): {n} spikes, as expected of "
                         "independent random entries: its whole spectrum lies inside the Marchenko–Pastur bulk")


def _spikes_trained(x: AnswerInputs) -> LiveAnswer:
    from internals.spectrum import spectrum_of

    name = _q_first(x)
    s = spectrum_of(x.opened.store, x.opened.stored_name_of(name))
    fit = s["powerlaw"]
    alpha = f", α={fit['alpha']:.2f} (D={fit['ks_distance']:.2f})" if fit else ""
    return LiveAnswer(s["num_spikes"], f"{name} as trained: {s['num_spikes']} of {s['m']} eigenvalues beyond the "
                                       f"MP threshold{alpha}: training grew directions out of the noise", tolerance=0.5)


ANSWERS: dict[str, AnswerSpec] = {s.key: s for s in [
    AnswerSpec("params_per_layer", "facts", _params_per_layer),
    AnswerSpec("bpe_merge", "facts", _bpe_merge),
    AnswerSpec("embed_rows", "facts", _embed_rows),
    AnswerSpec("q_proj_shape_first", "facts", _q_shape),
    AnswerSpec("k_proj_shape_first", "facts", _k_shape),
    AnswerSpec("kv_cache_bytes_per_token_bf16", "facts", _kv_bytes),
    AnswerSpec("rope_pairs", "facts", _rope_pairs),
    AnswerSpec("mlp_params_first", "facts", _mlp_params),
    AnswerSpec("final_norm_params", "facts", _final_norm),
    AnswerSpec("residual_writes", "facts", _residual_writes),
    AnswerSpec("lm_head_shape", "facts", _lm_head_shape),
    AnswerSpec("largest_component", "facts", _largest_component),
    AnswerSpec("best_previous_token_layer", "model", _best_previous_token_layer),
    AnswerSpec("pretrain_initial_loss", "facts", _uniform_loss),
    AnswerSpec("teacher_probs_per_position", "facts", _teacher_logits),
    AnswerSpec("full_ft_adam_gb", "facts", _full_ft_gb),
    AnswerSpec("ppo_four_models_gb", "facts", _ppo_gb),
    AnswerSpec("grpo_advantage", "facts", _grpo_advantage),
    AnswerSpec("dpo_initial_loss", "facts", _dpo_initial_loss),
    AnswerSpec("lora_r16_all", "facts", _lora_r16_all),
    AnswerSpec("lora_r16_all_peft_pct", "facts", _lora_peft_pct),
    AnswerSpec("qlora_base_gib", "facts", _qlora_gib),
    AnswerSpec("kv_cache_32k_mib", "facts", _kv_32k_mib),
    AnswerSpec("pass_at_k", "facts", _pass_at_k),
    AnswerSpec("lens_rows", "facts", _lens_rows),
    AnswerSpec("temperature_prob", "facts", _temperature_prob),
    AnswerSpec("top_p_size", "facts", _top_p_size),
    AnswerSpec("absmax_int8", "facts", _absmax_int8),
    AnswerSpec("largest_kurtosis_first", "model", _largest_kurtosis),
    AnswerSpec("experts_per_mlp", "facts", _experts_per_mlp),
    AnswerSpec("head_argmax_position", "model", _head_argmax),
    AnswerSpec("patching_best_attention_layer", "model", _patching_best_layer),
    AnswerSpec("patching_best_head_share", "model", _best_head_share),
    AnswerSpec("sink_head", "model", _sink_head),


    AnswerSpec("spikes_initial_q_first", "model", _spikes_initial),
    AnswerSpec("spikes_trained_q_first", "model", _spikes_trained),
]}


def compute_answer(exercise: Exercise, facts: Mapping[str, Any], tree: Sequence[Mapping[str, Any]] = (),
                   opened: Any = None) -> LiveAnswer:
    """The live answer of `exercise` for the open model. Raises KeyError for an unknown answer key and
    `AnswerUnavailable` when it cannot be computed here (a "model" answer without `opened`, a missing fact)."""
    spec = ANSWERS[exercise.answer]
    return spec.fn(AnswerInputs(facts=facts, tree=tree, opened=opened, given=exercise.given_dict))


_NUMBER_RE = re.compile(r"[-+]?(?:\d[\d,_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_guess(kind: str, typed: str, choices: Sequence[str] = ()) -> Any:
    """The typed guess as a value of `kind`; raises ValueError with what to type."""
    text = typed.strip()
    if kind == "number":
        m = _NUMBER_RE.search(text.replace(" ", ""))
        if not m:
            raise ValueError("type a number, e.g. 1536 or 1.5e9")
        return float(m.group(0).replace(",", "").replace("_", ""))
    if kind == "shape":
        dims = re.findall(r"\d+", text.replace(",", " ").replace("_", ""))
        if not dims:
            raise ValueError("type a shape, e.g. [256, 1536] or 256x1536")
        return [int(d) for d in dims]
    if kind == "choice":
        low = [c.lower() for c in choices]
        if text.lower() in low:
            return choices[low.index(text.lower())]
        if text.isdigit() and 1 <= int(text) <= len(choices):
            return choices[int(text) - 1]
        raise ValueError(f"choose one of: {', '.join(choices)}")
    if not text:
        raise ValueError("type an answer")
    return text


def check_answer(exercise: Exercise, typed: str, live: LiveAnswer) -> CheckResult:
    """Compare a typed guess with the live answer: exact for shapes, choices, texts and exact numbers; within the
    answer's relative tolerance for the others."""
    try:
        guess = parse_guess(exercise.kind, typed, exercise.choices)
    except ValueError as exc:
        return CheckResult(False, live.as_text(), live.explanation, problem=str(exc))
    value = live.value
    if exercise.kind == "number":
        if live.tolerance:
            correct = abs(guess - float(value)) <= live.tolerance * max(abs(float(value)), 1e-12)
        else:
            correct = guess == float(value)
    elif exercise.kind == "shape":
        correct = list(guess) == [int(v) for v in value]
    elif exercise.kind == "choice":
        correct = str(guess).lower() == str(value).lower()
    else:
        norm = lambda s: re.sub(r"\s+", "", str(s)).lower()  # noqa: E731
        correct = norm(guess) == norm(value)
    return CheckResult(bool(correct), live.as_text(), live.explanation)
