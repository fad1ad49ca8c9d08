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
import csv
import json
import math
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from internals.demo_model_training import corpus, heads
from internals.demo_model_training.train import encode_stream, even_windows
from internals.demo_path import demo_model_path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class MoeShape:
    hidden_size: int = 144
    intermediate_size: int = 256  # per expert; 2 active experts ~ the dense demo model's 512
    num_hidden_layers: int = 3
    num_attention_heads: int = 6
    num_key_value_heads: int = 2
    num_local_experts: int = 4
    num_experts_per_tok: int = 2
    router_aux_loss_coef: float = 0.01
    max_position_embeddings: int = 512
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("internals/demo_moe"), help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="a pipeline check (few steps)")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.log_every = 20, 5, 5
    return args


def make_config(shape: MoeShape, vocab_size: int, eos_id: int):
    from transformers import MixtralConfig

    config = MixtralConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.hidden_size // shape.num_attention_heads,
        hidden_act="silu",
        max_position_embeddings=shape.max_position_embeddings,
        initializer_range=shape.initializer_range,
        rms_norm_eps=shape.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": shape.rope_theta},
        tie_word_embeddings=False,
        sliding_window=None,
        num_local_experts=shape.num_local_experts,
        num_experts_per_tok=shape.num_experts_per_tok,
        router_aux_loss_coef=shape.router_aux_loss_coef,
        router_jitter_noise=0.0,
        output_router_logits=False,
        attention_dropout=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        use_cache=True,
    )
    config.architectures = ["MixtralForCausalLM"]
    config.dtype = "float32"
    return config


def lr_at(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup - 1)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cosine)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    from transformers import AutoTokenizer, GenerationConfig, MixtralForCausalLM

    source = demo_model_path()
    original = AutoTokenizer.from_pretrained(source)
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, out / name)
    eos_id = original.convert_tokens_to_ids(corpus.ENDOFTEXT)
    shape = MoeShape()
    config = make_config(shape, len(original), eos_id)
    config.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)

    files = corpus.stdlib_files()
    train_files, heldout_files = corpus.split_files(files)
    train_texts = [f.read() for f in train_files]
    heldout_texts = [f.read() for f in heldout_files]
    probe = heldout_texts[0][:20000] + train_texts[0][:20000]
    if tokenizer(probe)["input_ids"] != original(probe)["input_ids"]:
        raise RuntimeError("the copied tokenizer does not encode like the demo model's")
    train_stream = encode_stream(tokenizer, train_texts, eos_id)
    heldout_stream = encode_stream(tokenizer, heldout_texts, eos_id)
    say(f"{len(train_stream):,} train tokens, {len(heldout_stream):,} held-out tokens")

    model = MixtralForCausalLM(config).to(torch.float32)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    say(f"{n_params:,} parameters")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    rng = np.random.default_rng(args.seed)
    width = args.ctx + 1
    log_file = (out / "training_log.csv").open("w", newline="")
    fields = ["step", "loss", "aux_loss", "lr", "tokens_seen", "elapsed_s"]
    writer = csv.DictWriter(log_file, fieldnames=fields)
    writer.writeheader()
    tokens_seen, acc_loss, acc_aux, acc_n = 0, 0.0, 0.0, 0
    t_train, cpu_train = time.time(), time.process_time()
    for step in range(args.steps):
        lr = lr_at(step, args)
        for group in opt.param_groups:
            group["lr"] = lr
        starts = rng.integers(0, len(train_stream) - width, args.batch)
        rows = torch.from_numpy(np.stack([train_stream[s : s + width] for s in starts]).astype(np.int64))
        result = model(input_ids=rows[:, :-1], labels=rows[:, :-1].clone(), output_router_logits=True, use_cache=False)
        # transformers shifts labels itself; rows[:, :-1] as labels keeps inputs and targets in one window
        opt.zero_grad(set_to_none=True)
        result.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
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

    model.eval()
    model.config._attn_implementation = "sdpa"
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(
        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, do_sample=False, max_new_tokens=64
    ).save_pretrained(out)
    sample = corpus.heldout_sample(heldout_texts)
    (out / "heldout_sample.txt").write_text(sample, encoding="utf-8")
    sample_ids = heads.text_token_ids(tokenizer, sample)
    final = {
        "heldout_loss": heads.mean_loss(model, even_windows(heldout_stream, 128, 512)),
        "heldout_windows": 512,
        "heldout_unigram_entropy": heads.unigram_entropy(heldout_stream.tolist()),
        "sample_tokens": len(sample_ids),
        "continuation": heads.greedy_continuation(model, tokenizer, "def __init__(self", 24),
    }
    meta = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "threads": args.threads,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "parameters": n_params,
        "train_tokens": len(train_stream),
        "heldout_tokens": len(heldout_stream),
        "tokens_seen": tokens_seen,
        "steps": args.steps,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "shape": asdict(shape),
    }
    (out / "metrics.json").write_text(json.dumps({**meta, **final}, indent=1))
    say(f"held-out loss {final['heldout_loss']:.3f}; continuation {final['continuation']!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
