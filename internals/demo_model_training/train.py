"""Train the demo model shipped in `internals/demo_model/` (a 3-layer Qwen2 on Python stdlib sources).

    nice -n 5 python -m internals.demo_model_training.train --out internals/demo_model

Reproducible: fixed seeds, a deterministic file list and split, a deterministic data order (numpy
Generator), deterministic torch algorithms, a fixed number of CPU threads (1 by default: fastest at this size,
and robust when the cores are shared). Runs in about 20-30 minutes on 2 CPU cores. Three phases (a curriculum):
- A0: a copying warm-up (batch 8 x 64 tokens): every row a random sequence of the 64 most frequent tokens,
  repeated; it ends 250 steps after an induction head is measured on such sequences (score >= 0.5);
- A: batch 8 x 64, 37.5% of rows random sequences over the whole vocabulary repeated, 25% corpus spans
  repeated, the rest plain text; it ends 1,500 steps after an induction score >= 0.4 on the standard test
  (at most 10,000 steps);
- B: batch 16 x 128, an eighth random repeats, the rest plain text, cosine learning-rate decay.
The learning rate is constant (after warm-up) in A0 and A.
`--card-only` rewrites README.md from the metrics.json of a finished run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from internals.demo_model_training import common, corpus, heads
from internals.demo_model_training.init_weights import INIT_FILE, checksums, initial_model


@dataclass
class Phase:
    name: str
    steps: int  # at most; a phase with a switch rule may end earlier
    batch: int
    ctx: int
    p_random: float  # fraction of rows: random token sequence repeated
    p_span: float  # fraction of rows: corpus span repeated
    random_top: int = 0  # random tokens drawn from the N most frequent train tokens (0: the whole vocabulary)
    switch_score: float | None = None  # end `after` steps after an induction score >= this is measured
    switch_top: int = 0  # ... on random sequences of the N most frequent tokens (0: whole vocabulary)
    switch_seq_len: int = heads.INDUCTION_SEQ_LEN
    after: int = 0
    switched_at: int | None = None  # global step where the switch rule fired


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder (weights, tokenizer, card, log)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--steps-a0-max", type=int, default=4000, help="phase A0 (copying warm-up) at most")
    p.add_argument("--steps-a-max", type=int, default=10000, help="phase A at most")
    p.add_argument("--switch-every", type=int, default=250, help="steps between checks of a phase's switch rule")
    p.add_argument(
        "--induction-switch", type=float, default=0.4,
        help="phase A ends --steps-after-induction steps after an evaluation finds an induction score >= this",
    )  # fmt: skip
    p.add_argument("--steps-after-induction", type=int, default=1500)
    p.add_argument("--steps-b", type=int, default=3000)
    common.add_optimizer_args(p, lr=2e-3, warmup=300)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest for this size, and robust on a shared CPU)"
    )
    p.add_argument("--smoke", action="store_true", help="a one-minute pipeline check (few steps)")
    p.add_argument("--card-only", action="store_true", help="only rewrite README.md from metrics.json")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps_a0_max, args.steps_a_max, args.steps_b, args.eval_every, args.warmup = 150, 150, 60, 100, 50
        args.switch_every = 50
    return args


# ----------------------------------------------------------------------------------------------------- data


def encode_stream(tokenizer, texts: list[str], eos_id: int) -> np.ndarray:
    """All texts tokenized and joined, each followed by <|endoftext|>."""
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    parts = []
    for enc in encodings:
        parts.append(np.asarray(enc.ids, dtype=np.int32))
        parts.append(np.asarray([eos_id], dtype=np.int32))
    return np.concatenate(parts)


class Batches:
    def __init__(self, stream: np.ndarray, by_frequency: np.ndarray, seed: int) -> None:
        self.stream = stream
        self.by_frequency = by_frequency  # non-special token ids, most frequent in the train stream first
        self.rng = np.random.default_rng(seed)

    def make(self, phase: Phase) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows [B, ctx+1], plain-text mask [B])."""
        rng, n, width = self.rng, phase.batch, phase.ctx + 1
        rows = np.empty((n, width), dtype=np.int64)
        plain = np.zeros(n, dtype=bool)
        kinds = rng.random(n)
        allowed = self.by_frequency[: phase.random_top] if phase.random_top else self.by_frequency
        for r in range(n):
            if kinds[r] < phase.p_random:
                k = int(rng.integers(8, phase.ctx // 2 + 1))
                seq = allowed[rng.integers(0, len(allowed), k)]
                rows[r] = np.resize(seq, width)
            elif kinds[r] < phase.p_random + phase.p_span:
                k = int(rng.integers(8, phase.ctx // 2 + 1))
                start = int(rng.integers(0, len(self.stream) - k))
                rows[r] = np.resize(self.stream[start : start + k], width)
            else:
                start = int(rng.integers(0, len(self.stream) - width))
                rows[r] = self.stream[start : start + width]
                plain[r] = True
        return torch.from_numpy(rows), torch.from_numpy(plain)


def even_windows(stream: np.ndarray, ctx: int, n: int | None) -> torch.Tensor:
    """Non-overlapping windows of ctx tokens; n of them evenly spread over the stream (all when n is None)."""
    total = len(stream) // ctx
    idx = np.arange(total) if n is None or n >= total else np.linspace(0, total - 1, n).round().astype(int)
    return torch.from_numpy(np.stack([stream[i * ctx : (i + 1) * ctx] for i in idx]).astype(np.int64))


# ------------------------------------------------------------------------------------------------- training


def lr_at(step: int, phase_step: int, phase: Phase, args: argparse.Namespace) -> float:
    """Phase A: linear warm-up, then constant. Phase B: cosine decay from the peak to min_lr_ratio x peak."""
    if phase.name != "B":
        return args.lr * min(1.0, (step + 1) / args.warmup)
    return common.cosine_lr(args, phase_step / max(1, phase.steps - 1))


def make_config(shape: common.ModelShape, vocab_size: int, eos_id: int):
    from transformers import Qwen2Config

    config = Qwen2Config(**common.config_kwargs(shape, vocab_size, eos_id), use_sliding_window=False)
    config.architectures = ["Qwen2ForCausalLM"]
    config.dtype = "float32"
    return config


def head_scores(model, tokenizer, sample_windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return heads.previous_token_scores(model, sample_windows), heads.induction_scores(model, tokenizer)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.card_only:
        write_card(args.out)
        return
    out, say, t_start = common.start_run(args)

    # corpus and tokenizer
    texts = common.read_corpus()
    train_files, heldout_files = texts.train_files, texts.heldout_files
    train_texts, heldout_texts = texts.train_texts, texts.heldout_texts
    say(
        f"stdlib {corpus.stdlib_dir()}: {len(train_files)} train files ({sum(map(len, train_texts)):,} chars), "
        f"{len(heldout_files)} held-out files ({sum(map(len, heldout_texts)):,} chars)"
    )
    trained_tokenizer = corpus.train_tokenizer(train_texts, args.vocab_size)
    eos_id = trained_tokenizer.convert_tokens_to_ids(corpus.ENDOFTEXT)
    shape = common.ModelShape()
    config = make_config(shape, len(trained_tokenizer), eos_id)
    config.save_pretrained(out)
    trained_tokenizer.save_pretrained(out)
    # From here on, the tokenizer exactly as AutoTokenizer loads it from the folder.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    common.check_tokenizer(tokenizer, trained_tokenizer, texts, "the saved tokenizer does not encode like the trained one")
    train_stream = encode_stream(tokenizer, train_texts, eos_id)
    heldout_stream = encode_stream(tokenizer, heldout_texts, eos_id)
    say(f"tokenizer: {len(tokenizer)} tokens; train {len(train_stream):,} tokens, held-out {len(heldout_stream):,}")
    sample_text = corpus.heldout_sample(heldout_texts)
    (out / "heldout_sample.txt").write_text(sample_text, encoding="utf-8")
    (out / "heldout_files.txt").write_text("".join(f.relpath + "\n" for f in heldout_files), encoding="utf-8")
    sample_ids = heads.text_token_ids(tokenizer, sample_text)
    sample_windows = heads.text_windows(sample_ids, 128)

    # model: config, exact initial weights (rebuilt through init_weights so that it is the shipped recipe)
    (out / INIT_FILE).write_text(json.dumps({"seed": args.seed}))
    model = initial_model(out)
    init_sums = checksums(model)
    (out / INIT_FILE).write_text(
        json.dumps(
            {
                "seed": args.seed,
                "recipe": "internals.demo_model_training.init_weights.initial_model: one torch.Generator seeded "
                "with `seed`; in named_parameters() order, weights ~ N(0, initializer_range), biases 0, "
                "norm weights 1",
                "torch_version": torch.__version__,
                **init_sums,
            },
            indent=1,
        )
    )
    model.config._attn_implementation = "sdpa"
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    say(f"model: {n_params:,} parameters; init sha256 {init_sums['sha256'][:16]}...")

    opt = common.adamw(model, args, lambda n, p: p.ndim >= 2)
    phases = [
        # copying warm-up: only repeated random sequences of the 64 most frequent tokens (whose embedding and
        # unembedding rows text training aligns early), until an induction head works on such sequences
        Phase(
            "A0", args.steps_a0_max, batch=8, ctx=64, p_random=1.0, p_span=0.0, random_top=64,
            switch_score=0.5, switch_top=64, switch_seq_len=20, after=250,
        ),  # fmt: skip
        # mixed: random sequences over the whole vocabulary, repeated corpus spans, plain text
        Phase(
            "A", args.steps_a_max, batch=8, ctx=64, p_random=0.375, p_span=0.25,
            switch_score=args.induction_switch, after=args.steps_after_induction,
        ),  # fmt: skip
        # no repeated corpus spans here: they teach that text repeats itself verbatim, which greedy decoding
        # turns into loops; the random repeats keep the induction heads
        Phase("B", args.steps_b, batch=16, ctx=128, p_random=0.125, p_span=0.0),
    ]
    counts = np.bincount(train_stream, minlength=len(tokenizer))
    by_frequency = np.array(
        [int(i) for i in np.argsort(-counts, kind="stable") if int(i) not in heads.special_ids(tokenizer)],
        dtype=np.int64,
    )
    batches = Batches(train_stream, by_frequency, args.seed)
    eval_heldout = even_windows(heldout_stream, 128, 64)
    eval_train = even_windows(train_stream, 128, 64)

    fields = [
        "step", "phase", "loss", "text_loss", "lr", "tokens_seen", "heldout_loss", "train_eval_loss",
        "max_prev_token_score", "max_induction_score", "elapsed_s",
    ]  # fmt: skip
    log_file, writer = common.open_log(out, fields)

    def evaluate(row: dict) -> None:
        model.eval()
        row["heldout_loss"] = f"{heads.mean_loss(model, eval_heldout):.4f}"
        row["train_eval_loss"] = f"{heads.mean_loss(model, eval_train):.4f}"
        prev, ind = head_scores(model, tokenizer, sample_windows)
        row["max_prev_token_score"] = f"{float(prev.max()):.3f}"
        row["max_induction_score"] = f"{float(ind.max()):.3f}"
        model.train()

    step, tokens_seen = 0, 0
    acc_loss, acc_text, acc_text_n, acc_n = 0.0, 0.0, 0, 0
    t_train = time.time()
    cpu_train = time.process_time()
    for phase in phases:
        say(f"phase {phase.name}: up to {phase.steps} steps of {phase.batch} x {phase.ctx} tokens")
        phase_step = 0
        while phase_step < phase.steps:
            lr = lr_at(step, phase_step, phase, args)
            common.set_lr(opt, lr)
            rows, plain = batches.make(phase)
            logits = model(input_ids=rows[:, :-1], use_cache=False).logits
            per_token = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1), reduction="none"
            ).view(rows.shape[0], -1)
            loss = per_token.mean()
            common.optimizer_step(model, opt, loss)
            step += 1
            phase_step += 1
            tokens_seen += rows[:, :-1].numel()
            acc_loss += loss.item()
            acc_n += 1
            if bool(plain.any()):
                acc_text += per_token[plain].detach().mean().item()
                acc_text_n += 1
            last = phase_step == phase.steps
            if step % args.log_every == 0 or last:
                row = {k: "" for k in fields}
                row.update(
                    step=step,
                    phase=phase.name,
                    loss=f"{acc_loss / acc_n:.4f}",
                    text_loss=f"{acc_text / acc_text_n:.4f}" if acc_text_n else "",
                    lr=f"{lr:.6g}",
                    tokens_seen=tokens_seen,
                    elapsed_s=f"{time.time() - t_train:.1f}",
                )
                if step % args.eval_every == 0 or last:
                    evaluate(row)
                    say(
                        f"step {step} loss {row['loss']} text {row['text_loss']} held-out {row['heldout_loss']} "
                        f"prev {row['max_prev_token_score']} induction {row['max_induction_score']} lr {lr:.2e}"
                    )
                if phase.switch_score is not None and phase.switched_at is None and step % args.switch_every == 0:
                    top = by_frequency[: phase.switch_top].tolist() if phase.switch_top else None
                    model.eval()
                    score = float(
                        heads.induction_scores(model, tokenizer, seq_len=phase.switch_seq_len, token_ids=top).max()
                    )
                    model.train()
                    if score >= phase.switch_score:
                        phase.switched_at = step
                        phase.steps = min(phase.steps, phase_step + phase.after)
                        say(
                            f"phase {phase.name}: induction score {score:.2f} at step {step}; "
                            f"the phase ends after step {step - phase_step + phase.steps}"
                        )
                writer.writerow(row)
                log_file.flush()
                acc_loss, acc_text, acc_text_n, acc_n = 0.0, 0.0, 0, 0
    log_file.close()
    train_seconds = time.time() - t_train
    train_cpu_seconds = time.process_time() - cpu_train
    say(f"training done in {train_seconds / 60:.1f} min")

    # save
    common.save_model(model, out, eos_id)

    # final measurements
    final = {
        "heldout_loss": heads.mean_loss(model, even_windows(heldout_stream, 128, None)),
        "train_loss": heads.mean_loss(model, even_windows(train_stream, 128, 2048)),
        "heldout_unigram_entropy": heads.unigram_entropy(heldout_stream.tolist()),
        "heldout_tokens": int(len(heldout_stream)),
        "train_tokens": int(len(train_stream)),
        "sample_loss": heads.mean_loss(model, sample_windows),
        "sample_unigram_entropy": heads.unigram_entropy(sample_ids),
        "sample_tokens": len(sample_ids),
    }
    prev, ind = head_scores(model, tokenizer, sample_windows)
    final["previous_token_scores"] = [[round(float(x), 4) for x in r] for r in prev]
    final["induction_scores"] = [[round(float(x), 4) for x in r] for r in ind]
    final["continuation"] = heads.greedy_continuation(model, tokenizer, "def __init__(self", 24)
    meta = common.run_meta(
        args, shape, ("torch", "transformers", "tokenizers"), train_seconds, train_cpu_seconds,
        total_seconds=round(time.time() - t_start, 1), parameters=n_params, train_files=len(train_files),
        heldout_files=len(heldout_files), train_chars=sum(map(len, train_texts)),
        heldout_chars=sum(map(len, heldout_texts)), tokens_seen=tokens_seen, steps=step,
        phases=[asdict(p) for p in phases],
    )  # fmt: skip
    (out / "metrics.json").write_text(json.dumps({**meta, **final}, indent=1))
    write_card(out)
    say(
        f"held-out loss {final['heldout_loss']:.3f} (unigram entropy {final['heldout_unigram_entropy']:.3f}); "
        f"train loss {final['train_loss']:.3f}; continuation {final['continuation']!r}"
    )


# ----------------------------------------------------------------------------------------------- model card


def _table(scores: list[list[float]]) -> str:
    n_heads = len(scores[0])
    lines = ["| layer | " + " | ".join(f"head {h}" for h in range(n_heads)) + " |"]
    lines.append("|---|" + "---|" * n_heads)
    for layer, row in enumerate(scores):
        lines.append(f"| {layer} | " + " | ".join(f"{x:.2f}" for x in row) + " |")
    return "\n".join(lines)


def _named(scores: list[list[float]], threshold: float, label: str) -> str:
    found = heads.top_heads(torch.tensor(scores), threshold)
    if not found:
        best = heads.top_heads(torch.tensor(scores), -1.0)[0]
        return f"- none at or above {threshold} (best: layer {best[0]} head {best[1]}: {label} {best[2]:.2f})"
    return "\n".join(f"- layer {layer} head {h}: {label} {s:.2f}" for layer, h, s in found)


def write_card(out: Path) -> None:
    """(Re)write README.md from metrics.json and config.json in `out` (also: `--card-only`)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out)
    meta = final = json.loads((out / "metrics.json").read_text())
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file() and p.name != "README.md")
    def phase_line(p: dict) -> str:
        vocab = f"the {p['random_top']} most frequent train tokens" if p["random_top"] else "the whole vocabulary"
        rows = [f"{p['p_random'] * 100:g}% of rows a random sequence (8 to {p['ctx'] // 2} tokens, from {vocab}) "
                "repeated to fill the row"]  # fmt: skip
        if p["p_span"]:
            rows.append(f"{p['p_span'] * 100:g}% a corpus span (8 to {p['ctx'] // 2} tokens) repeated")
        if p["p_random"] + p["p_span"] < 1:
            rows.append("the rest plain text")
        line = f"- phase {p['name']}: {p['steps']:,} steps, batch {p['batch']} x {p['ctx']} tokens; " + ", ".join(rows)
        if p["switch_score"] is not None:
            on = f"the {p['switch_top']} most frequent tokens" if p["switch_top"] else "the whole vocabulary"
            line += (
                f". Ends {p['after']:,} steps after a check (every {a['switch_every']} steps) first measures an "
                f"induction score >= {p['switch_score']:g} on sequences of {p['switch_seq_len']} random tokens from "
                f"{on} repeated twice: "
                + (f"here at step {p['switched_at']:,}" if p["switched_at"] else "not reached, the phase ran to its maximum")
            )
        return line + "."

    a = meta["args"]
    phase_lines = "\n".join(phase_line(p) for p in meta["phases"])
    card = f"""# demo_model: a 3-layer Qwen2 trained on the Python standard library

A small model of the same family as DeepSeek-R1-Distill-Qwen-1.5B, trained from scratch on 2 CPU cores by
this project's own script, so that the explorer has real, trained weights to show without a download.
Everything below was written by the training script from its own measurements.

## Reproduce

```
nice -n 5 python -m internals.demo_model_training.train --out internals/demo_model
```

Deterministic given the same Python standard library (Python {meta["python"]} here), torch
({meta["torch"]}), transformers ({meta["transformers"]}), tokenizers ({meta["tokenizers"]}) and thread count
({meta["threads"]}): seed {a["seed"]}, sorted file list, numpy `default_rng({a["seed"]})` data order,
`torch.use_deterministic_algorithms(True)`.
`internals.demo_model_training.init_weights.initial_model("internals/demo_model")` rebuilds the exact
untrained weights; `init.json` holds the seed and their checksums.

## Architecture (`Qwen2ForCausalLM`)

| | this model | DeepSeek-R1-Distill-Qwen-1.5B |
|---|---|---|
| layers | {config.num_hidden_layers} | 28 |
| hidden size | {config.hidden_size} | 1536 |
| query heads / KV heads (GQA) | {config.num_attention_heads} / {config.num_key_value_heads} \
(head dim {config.hidden_size // config.num_attention_heads}) | 12 / 2 (head dim 128) |
| MLP (SwiGLU, `silu`) | {config.intermediate_size} | 8960 |
| norm | RMSNorm, eps {config.rms_norm_eps} | RMSNorm, eps 1e-6 |
| positions | RoPE, theta {config.rope_parameters["rope_theta"]:g}, max {config.max_position_embeddings} | RoPE, theta 10000 |
| q/k/v biases | yes | yes |
| tied embeddings | no (separate `lm_head`) | no |
| vocabulary | {config.vocab_size} | 151,936 |
| parameters | {meta["parameters"]:,} | 1,777,088,000 |
| stored as | float32 safetensors | bf16 |

Folder size: {size / 1e6:.1f} MB.

## Corpus

The `.py` files under the Python standard library directory (`sysconfig.get_paths()['stdlib']`), sorted by
path, leaving out any directory named test, tests, idle_test, site-packages, dist-packages, `__pycache__`,
encodings (generated codec tables) or pydoc_data. A file is held out when the sha256 of its relative path,
taken as an integer mod 10, is 0: {meta["train_files"]} train files ({meta["train_chars"]:,} characters,
{final["train_tokens"]:,} tokens) and {meta["heldout_files"]} held-out files ({meta["heldout_chars"]:,}
characters, {final["heldout_tokens"]:,} tokens), listed in `heldout_files.txt`. `heldout_sample.txt` is
{len((out / "heldout_sample.txt").read_text(encoding="utf-8")):,} characters of held-out code (about 1,000
characters from the middle of each of the first 8 held-out files) used by the tests. The project's lessons are
not used.

## Tokenizer

Byte-level BPE trained with `tokenizers` on the train files only, {config.vocab_size} tokens including the
special token `<|endoftext|>` (id {config.eos_token_id}, used as bos, eos, pad and unk, and appended after each
file). Its normalizer and pre-tokenizer are those of transformers' `Qwen2Tokenizer`, as for the 1.5B model
(NFC; the Qwen2 split regex, which keeps digits one per token; byte-level without a prefix space), and it is
saved as a `Qwen2Tokenizer`: `AutoTokenizer` rebuilds that pipeline for any `qwen2` folder, and the training
script checks that the reloaded tokenizer encodes exactly like the one it trained, then uses the reloaded one.
Decoding is byte-level, so `decode(encode(text)) == text` for NFC text.

## Training

AdamW (betas 0.9/0.95, weight decay {a["weight_decay"]} on matrices), learning rate {a["lr"]:g} after a linear
warm-up over {a["warmup"]} steps, constant through phases A0 and A, then a cosine decay to {a["min_lr_ratio"]:g} x
that over phase B; gradient clipping at 1.0, float32, {meta["threads"]} CPU thread(s).

A curriculum with repeated sequences, so that induction heads form early. Random token sequences repeated
are the cleanest signal for an induction head, but copying a random token needs that token's input embedding
and (untied) output row to be aligned, which takes long for rare tokens. Without the warm-up (three earlier
runs of this architecture here, with a GPT-2-style or this pre-tokenizer and 25-37.5% random rows), the head
formed once after about 5,500 steps and not at all within 9,000 and 11,500 steps the other two times. \
With a short warm-up on only the 64 most frequent tokens, an induction head
forms there within a couple of thousand steps and then extends to the whole vocabulary while the model learns
the text:

{phase_lines}

{meta["steps"]:,} steps, {meta["tokens_seen"]:,} tokens seen; training time {meta["train_seconds"] / 60:.1f} min
wall clock, {meta["train_cpu_seconds"] / 60:.1f} min of CPU time (total {meta["total_seconds"] / 60:.1f} min with tokenizer
training and evaluation; the machine's 2 cores were shared with other work). `training_log.csv` holds
step, phase, loss (mixed batch), text_loss (plain-text rows), lr, tokens_seen and, every {a["eval_every"]} steps,
held-out loss, train loss (64 windows of 128 tokens each) and the best previous-token and induction scores.

## Results

Losses are mean next-token cross-entropy in nats, on non-overlapping windows of 128 tokens.

| | loss | unigram entropy of the same text |
|---|---|---|
| train files (2,048 windows) | {final["train_loss"]:.3f} | |
| held-out files (all) | {final["heldout_loss"]:.3f} | {final["heldout_unigram_entropy"]:.3f} |
| `heldout_sample.txt` ({final["sample_tokens"]:,} tokens) | {final["sample_loss"]:.3f} | {final["sample_unigram_entropy"]:.3f} |

The unigram entropy is that of the empirical token frequencies of the text itself (the loss of the best
predictor that ignores context), so a held-out loss well below it shows the model uses context.

### Heads

Previous-token score: mean attention from each position to the one before, on `heldout_sample.txt`
(windows of 128 tokens). Induction score: on 8 sequences of 40 random tokens repeated twice (seed
{heads.INDUCTION_SEED}), the mean attention from position i of the second copy to position i - 39, the token
that followed the earlier occurrence of the current one.

Previous-token heads (score >= 0.5):
{_named(final["previous_token_scores"], 0.5, "previous-token score")}

Induction heads (score >= 0.3):
{_named(final["induction_scores"], 0.3, "induction score")}

Previous-token scores:

{_table(final["previous_token_scores"])}

Induction scores:

{_table(final["induction_scores"])}

### Greedy continuation

`def __init__(self` -> `{final["continuation"]!r}`

## Limits

Two million parameters trained for minutes: it writes Python-looking text, not working programs, and greedy
decoding can fall into loops (its induction heads make repeating what is in the context cheap). It is for
looking inside (weights, attention, logit lens), with the same component types as the 1.5B model.
"""
    (out / "README.md").write_text(card, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
