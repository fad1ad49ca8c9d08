"""Measure what the MoE demo model's experts learned and write its model card (README.md).

    python -m internals.demo_model_training.moe_card --out internals/demo_moe

Specialisation is measured, not guessed: `routing_sample.txt` (held-out code shipped in the folder) is cut into
windows of 128 tokens, each run through the model with `internals.inference.routing.expert_routing` (the
model's own router), and every token is put in one class by its text (indentation/whitespace, keyword,
identifier, digits, punctuation, other). For each layer and expert the card compares the classes of the tokens
whose first-choice expert it is with the base rate over all tokens. `specialisation.json` holds the counts;
`tests/internals/test_demo_moe.py` recomputes them from the shipped files and checks the card's claims.
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
from pathlib import Path
from typing import Any

CLASSES = ("whitespace", "keyword", "identifier", "digits", "punctuation", "other")
WINDOW = 128
SAMPLE_FILE = "routing_sample.txt"
SPEC_FILE = "specialisation.json"
MIN_BASE = 0.03  # classes rarer than this in the sample are not claimed
MIN_LIFT = 1.5  # a claim: an expert's share of a class at least this many times the base rate
MIN_TOKENS = 50  # an expert that is the first choice of fewer tokens gets no claim


def token_class(text: str) -> str:
    """One class per token, from the text it stands for."""
    if text == "" or text.isspace():
        return "whitespace"
    core = text.strip()
    if keyword.iskeyword(core):
        return "keyword"
    if core.isidentifier():
        return "identifier"
    if core.isdigit():
        return "digits"
    if all(not c.isalnum() and not c.isspace() and c != "_" for c in core):
        return "punctuation"
    return "other"


def measure(folder: Path) -> dict[str, Any]:
    """Route `routing_sample.txt` through the model in `folder`; count token classes per layer and expert."""
    from internals.inference.loading import load_for_inference
    from internals.inference.routing import expert_routing
    from internals.sources import resolve_source

    loaded = load_for_inference(resolve_source(str(folder)), device="cpu", dtype="float32")
    tok = loaded.tokenizer
    ids = tok((folder / SAMPLE_FILE).read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
    classes = [token_class(tok.decode([i])) for i in ids]
    n_windows = len(ids) // WINDOW
    base = {c: 0 for c in CLASSES}
    layers: dict[int, list[dict[str, int]]] = {}
    num_experts = top_k = 0
    for w in range(n_windows):
        window = ids[w * WINDOW : (w + 1) * WINDOW]
        result = expert_routing(loaded, window)
        num_experts, top_k = result["num_experts"], result["top_k"]
        for cls in classes[w * WINDOW : (w + 1) * WINDOW]:
            base[cls] += 1
        for entry in result["layers"]:
            table = layers.setdefault(entry["layer"], [{c: 0 for c in CLASSES} for _ in range(num_experts)])
            for t, chosen in enumerate(entry["experts"]):
                first = max(range(len(chosen)), key=lambda k: entry["weights"][t][k])
                table[chosen[first]][classes[w * WINDOW + t]] += 1
    loaded.close()
    return {
        "window": WINDOW, "windows": n_windows, "tokens": n_windows * WINDOW, "num_experts": num_experts,
        "top_k": top_k, "classes": list(CLASSES), "base": base,
        "layers": [{"layer": layer, "first_choice": table} for layer, table in sorted(layers.items())],
    }


def claims(spec: dict[str, Any]) -> list[str]:
    """The card's specialisation sentences: for each layer and expert, the class it takes most over its base rate."""
    total = spec["tokens"]
    out = []
    for entry in spec["layers"]:
        for expert, counts in enumerate(entry["first_choice"]):
            n = sum(counts.values())
            if n < MIN_TOKENS:
                out.append(f"- layer {entry['layer']} expert {expert}: first choice of {n} tokens, too few to say")
                continue
            lifts = sorted((((counts[c] / n) / (spec["base"][c] / total), c) for c in spec["classes"]
                            if spec["base"][c] / total >= MIN_BASE), reverse=True)
            strong = [item for item in lifts if item[0] >= MIN_LIFT] or lifts[:1]
            parts = [f"{counts[c] / n:.0%} {c} vs {spec['base'][c] / total:.0%} base rate ({lift:.1f}x)"
                     for lift, c in strong]
            verdict = "specialised" if strong[0][0] >= MIN_LIFT else "no clear class"
            out.append(f"- layer {entry['layer']} expert {expert} ({n / total:.0%} of tokens): {'; '.join(parts)}: {verdict}")
    return out


def _table(spec: dict[str, Any]) -> str:
    total = spec["tokens"]
    head = "| layer | expert | tokens | " + " | ".join(spec["classes"]) + " |"
    lines = [head, "|---|---|---|" + "---|" * len(spec["classes"])]
    lines.append("| all | - | 100% | " + " | ".join(f"{spec['base'][c] / total:.0%}" for c in spec["classes"]) + " |")
    for entry in spec["layers"]:
        for expert, counts in enumerate(entry["first_choice"]):
            n = sum(counts.values()) or 1
            lines.append(f"| {entry['layer']} | {expert} | {sum(counts.values()) / total:.0%} | "
                         + " | ".join(f"{counts[c] / n:.0%}" for c in spec["classes"]) + " |")
    return "\n".join(lines)


def write_card(folder: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    meta = json.loads((folder / "metrics.json").read_text())
    spec = json.loads((folder / SPEC_FILE).read_text())
    a = meta["args"]
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name != "README.md")
    card = f"""# demo_moe: a 3-layer Mixtral-style mixture of experts trained on the Python standard library

A small mixture-of-experts model for the explorer's expert and routing views (`llm-internals --demo moe`),
trained from scratch on 2 CPU cores by this project's own script on the same corpus, with the same tokenizer,
as the dense demo model (`internals/demo_model/`). Everything below was written from measurements.

## Reproduce

```
OMP_NUM_THREADS=1 python -m internals.demo_model_training.train_moe --out internals/demo_moe
python -m internals.demo_model_training.moe_card --out internals/demo_moe
```

Deterministic given the same Python standard library (Python {meta["python"]}), torch ({meta["torch"]}),
transformers ({meta["transformers"]}) and thread count ({meta["threads"]}): seed {a["seed"]}, numpy
`default_rng({a["seed"]})` batch order, `torch.use_deterministic_algorithms(True)`.

## Architecture (`MixtralForCausalLM`)

| | |
|---|---|
| layers | {config.num_hidden_layers}, every one a sparse MoE block |
| hidden size | {config.hidden_size} |
| query heads / KV heads | {config.num_attention_heads} / {config.num_key_value_heads} |
| experts per layer | {config.num_local_experts} (SwiGLU, intermediate size {config.intermediate_size} each) |
| experts per token (top-k) | {config.num_experts_per_tok}, softmax router, top-k weights renormalised |
| vocabulary | {config.vocab_size} (the dense demo model's byte-level BPE) |
| parameters | {meta["parameters"]:,} |
| stored as | float32 safetensors, experts as separate tensors (`block_sparse_moe.experts.E.w1/w2/w3`), \
fused by transformers at load time into `mlp.experts.gate_up_proj` / `down_proj` |

Folder size: {size / 1e6:.1f} MB.

## Training

Plain text from the train files (batch {a["batch"]} x {a["ctx"]} tokens, {meta["steps"]:,} steps,
{meta["tokens_seen"]:,} tokens seen), AdamW (betas 0.9/0.95, weight decay {a["weight_decay"]} on matrices),
learning rate {a["lr"]:g} after a {a["warmup"]}-step warm-up, cosine decay to {a["min_lr_ratio"]:g} x; gradient
clipping at 1.0; Mixtral's load-balancing loss with coefficient {config.router_aux_loss_coef}. Training time
{meta["train_seconds"] / 60:.1f} min wall clock on a shared machine. `training_log.csv` holds the language-model
loss and the load-balancing loss every {a["log_every"]} steps.

Held-out loss: {meta["heldout_loss"]:.3f} nats per token ({meta["heldout_windows"]} windows of 128 tokens of
the held-out files; unigram entropy of the held-out text {meta["heldout_unigram_entropy"]:.3f}). Greedy
continuation of `def __init__(self`: `{meta["continuation"]!r}`.

## What the experts learned (measured)

`{SAMPLE_FILE}` is held-out code (about 1,000 characters from the middle of each of the first 40 held-out
files): {spec["tokens"]:,} tokens in {spec["windows"]} windows of {spec["window"]}, each routed by the model's own
router. Every token is put in one class by its text: whitespace (indentation, newlines), keyword (Python
keywords), identifier, digits, punctuation, other (mixed, string fragments). Each row gives the classes of the
tokens whose first-choice expert (largest routing weight) it is; the first row is the base rate over all
tokens.

{_table(spec)}

For each expert, the classes it takes at least {MIN_LIFT}x above their base rate, or else the one it takes most
above its base rate (classes under {MIN_BASE:.0%} of tokens left out; experts that are the first choice of fewer than
{MIN_TOKENS} tokens get no claim):

{chr(10).join(claims(spec))}

`{SPEC_FILE}` holds the counts; `tests/internals/test_demo_moe.py` recomputes them from the shipped files.

## Limits

Two and a half million parameters trained for minutes: Python-looking text, not working programs. Token
classes are by surface text only; a token's routing also depends on its context.
"""
    (folder / "README.md").write_text(card, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("internals/demo_moe"))
    p.add_argument("--card-only", action="store_true", help="only rewrite README.md from the saved counts")
    args = p.parse_args(argv)
    if not args.card_only:
        if not (args.out / SAMPLE_FILE).is_file():
            from internals.demo_model_training import corpus

            heldout = [f.read() for f in corpus.split_files(corpus.stdlib_files())[1]]
            (args.out / SAMPLE_FILE).write_text(corpus.heldout_sample(heldout, n_files=40), encoding="utf-8")
        (args.out / SPEC_FILE).write_text(json.dumps(measure(args.out), indent=1))
    write_card(args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
