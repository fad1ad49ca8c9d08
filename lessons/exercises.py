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
from typing import Any

from lessons.catalog import Exercise

__all__ = ["LiveAnswer", "CheckResult", "AnswerInputs", "AnswerSpec", "ANSWERS", "compute_answer", "check_answer",
           "AnswerUnavailable", "parse_guess", "bpe_merges", "grpo_advantages", "previous_token_scores"]


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
