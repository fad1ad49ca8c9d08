"""Train the mixture-of-experts demo model shipped in `internals/demo_moe/` (a 3-layer Mixtral, 4 experts,
top-2) on the same Python-stdlib corpus, with the same tokenizer, as the dense demo model.

    OMP_NUM_THREADS=1 python -m internals.demo_model_training.train_moe --out internals/demo_moe

The tokenizer is not retrained: its files are copied from `internals/demo_model/` and the script checks that
the copy, loaded with `AutoTokenizer` from the new folder, encodes exactly like the original. Plain text only
(no copying curriculum: this model is for looking at experts and routing, not induction heads), batch
8 x 128 (small, so that it trains in about 25 minutes on a CPU shared with other work), AdamW with a linear
warm-up and a cosine decay, Mixtral's own load-balancing loss
(`output_router_logits=True`, `router_aux_loss_coef`) so that every expert gets used. Deterministic given the
same versions and thread count (seed, numpy `default_rng` data order, `torch.use_deterministic_algorithms`).
The model card (README.md, with measured expert specialisation) is written by
`internals.demo_model_training.moe_card` from the saved files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from internals.demo_model_training import common, corpus, heads
from internals.demo_model_training.train import encode_stream, even_windows
from internals.demo_path import demo_model_path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class MoeShape(common.ModelShape):
    """The dense demo model's shape with experts: 4, top-2, each half as wide as the dense MLP."""

    intermediate_size: int = 256  # per expert; 2 active experts ~ the dense demo model's 512
    num_local_experts: int = 4
    num_experts_per_tok: int = 2
    router_aux_loss_coef: float = 0.01


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("internals/demo_moe"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ctx", type=int, default=128)
    common.add_optimizer_args(p, lr=3e-3, warmup=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="a pipeline check (few steps)")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.log_every = 20, 5, 5
    return args


def make_config(shape: MoeShape, vocab_size: int, eos_id: int):
    from transformers import MixtralConfig

    config = MixtralConfig(
        **common.config_kwargs(shape, vocab_size, eos_id),
        head_dim=shape.hidden_size // shape.num_attention_heads,
        sliding_window=None,
        num_local_experts=shape.num_local_experts,
        num_experts_per_tok=shape.num_experts_per_tok,
        router_aux_loss_coef=shape.router_aux_loss_coef,
        router_jitter_noise=0.0,
        output_router_logits=False,
    )
    config.architectures = ["MixtralForCausalLM"]
    config.dtype = "float32"
    return config


def lr_at(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return common.cosine_lr(args, (step - args.warmup) / max(1, args.steps - args.warmup - 1))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out, say, _ = common.start_run(args)

    from transformers import AutoTokenizer, MixtralForCausalLM

    source = demo_model_path()
    original = AutoTokenizer.from_pretrained(source)
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, out / name)
    eos_id = original.convert_tokens_to_ids(corpus.ENDOFTEXT)
    shape = MoeShape()
    config = make_config(shape, len(original), eos_id)
    config.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)

    texts = common.read_corpus()
    common.check_tokenizer(tokenizer, original, texts, "the copied tokenizer does not encode like the demo model's")
    train_stream = encode_stream(tokenizer, texts.train_texts, eos_id)
    heldout_stream = encode_stream(tokenizer, texts.heldout_texts, eos_id)
    say(f"{len(train_stream):,} train tokens, {len(heldout_stream):,} held-out tokens")

    model = MixtralForCausalLM(config).to(torch.float32)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    say(f"{n_params:,} parameters")
    opt = common.adamw(model, args, lambda n, p: p.dim() >= 2 and "embed" not in n)
    rng = np.random.default_rng(args.seed)
    width = args.ctx + 1
    log_file, writer = common.open_log(out, ["step", "loss", "aux_loss", "lr", "tokens_seen", "elapsed_s"])
    tokens_seen, acc_loss, acc_aux, acc_n = 0, 0.0, 0.0, 0
    t_train, cpu_train = time.time(), time.process_time()
    for step in range(args.steps):
        lr = lr_at(step, args)
        common.set_lr(opt, lr)
        starts = rng.integers(0, len(train_stream) - width, args.batch)
        rows = torch.from_numpy(np.stack([train_stream[s : s + width] for s in starts]).astype(np.int64))
        result = model(input_ids=rows[:, :-1], labels=rows[:, :-1].clone(), output_router_logits=True, use_cache=False)
        # transformers shifts labels itself; rows[:, :-1] as labels keeps inputs and targets in one window
        common.optimizer_step(model, opt, result.loss)
        tokens_seen += args.batch * args.ctx
        aux = float(result.aux_loss.detach())
        acc_loss += float(result.loss.detach()) - shape.router_aux_loss_coef * aux  # the language-model loss alone
        acc_aux += aux
        acc_n += 1
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            writer.writerow(
                {
                    "step": step + 1,
                    "loss": f"{acc_loss / acc_n:.4f}",
                    "aux_loss": f"{acc_aux / acc_n:.4f}",
                    "lr": f"{lr:.6g}",
                    "tokens_seen": tokens_seen,
                    "elapsed_s": f"{time.time() - t_train:.1f}",
                }
            )
            log_file.flush()
            say(f"step {step + 1} loss {acc_loss / acc_n:.4f} aux {acc_aux / acc_n:.4f} lr {lr:.2e}")
            acc_loss, acc_aux, acc_n = 0.0, 0.0, 0
    log_file.close()
    train_seconds, train_cpu_seconds = time.time() - t_train, time.process_time() - cpu_train
    say(f"training done in {train_seconds / 60:.1f} min")

    common.save_model(model, out, eos_id)
    sample = corpus.heldout_sample(texts.heldout_texts)
    (out / "heldout_sample.txt").write_text(sample, encoding="utf-8")
    sample_ids = heads.text_token_ids(tokenizer, sample)
    final = {
        "heldout_loss": heads.mean_loss(model, even_windows(heldout_stream, 128, 512)),
        "heldout_windows": 512,
        "heldout_unigram_entropy": heads.unigram_entropy(heldout_stream.tolist()),
        "sample_tokens": len(sample_ids),
        "continuation": heads.greedy_continuation(model, tokenizer, "def __init__(self", 24),
    }
    meta = common.run_meta(
        args, shape, ("torch", "transformers"), train_seconds, train_cpu_seconds, parameters=n_params,
        train_tokens=len(train_stream), heldout_tokens=len(heldout_stream), tokens_seen=tokens_seen, steps=args.steps,
    )  # fmt: skip
    (out / "metrics.json").write_text(json.dumps({**meta, **final}, indent=1))
    say(f"held-out loss {final['heldout_loss']:.3f}; continuation {final['continuation']!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
