"""What the two demo-model training scripts (`train.py`, dense; `train_moe.py`, mixture of experts) share.

Why one module: both start a run the same way (threads, seed, deterministic algorithms, output folder, a
timestamped log), read the same corpus split, check the tokenizer as AutoTokenizer loads it from the output
folder, train with AdamW (decayed matrices, undecayed rest), clip and step the same way, decay the learning
rate along the same cosine, save the model with the same generation config and record the same run metadata.
Each of those is written once here; the scripts keep what differs (curriculum, losses, measurements).
Every function does exactly what the scripts did inline, in the same order, so a run is bit-for-bit the same.
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import torch

from internals.demo_model_training import corpus


@dataclass
class ModelShape:
    """The dense demo model's shape (a Qwen2); the MoE shape extends it."""

    hidden_size: int = 144
    intermediate_size: int = 512
    num_hidden_layers: int = 3
    num_attention_heads: int = 6
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02


def config_kwargs(shape: ModelShape, vocab_size: int, eos_id: int) -> dict[str, Any]:
    """The transformers config arguments both demo models set alike (`<|endoftext|>` as bos, eos and pad)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        hidden_act="silu",
        max_position_embeddings=shape.max_position_embeddings,
        initializer_range=shape.initializer_range,
        rms_norm_eps=shape.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": shape.rope_theta},
        tie_word_embeddings=False,
        attention_dropout=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        use_cache=True,
    )


def add_optimizer_args(p: argparse.ArgumentParser, *, lr: float, warmup: int) -> None:
    """The learning-rate, weight-decay and logging options both scripts take."""
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--log-every", type=int, default=50)


def start_run(args: argparse.Namespace) -> tuple[Path, Callable[[str], None], float]:
    """Threads, seed and deterministic algorithms set; the output folder made. Returns it, `say(msg)` (a line
    stamped with the seconds since the start) and the start time."""
    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    return out, say, t_start


@dataclass
class CorpusSplit:
    """The stdlib corpus split into train and held-out files, with their texts."""

    train_files: list[corpus.SourceFile]
    heldout_files: list[corpus.SourceFile]
    train_texts: list[str]
    heldout_texts: list[str]


def read_corpus() -> CorpusSplit:
    """The deterministic train/held-out split of the stdlib corpus, read."""
    train_files, heldout_files = corpus.split_files(corpus.stdlib_files())
    return CorpusSplit(train_files, heldout_files, [f.read() for f in train_files], [f.read() for f in heldout_files])


def check_tokenizer(tokenizer: Any, reference: Any, texts: CorpusSplit, problem: str) -> None:
    """Raise `RuntimeError(problem)` unless `tokenizer` encodes a held-out + train probe like `reference`."""
    probe = texts.heldout_texts[0][:20000] + texts.train_texts[0][:20000]
    if tokenizer(probe)["input_ids"] != reference(probe)["input_ids"]:
        raise RuntimeError(problem)


def adamw(model: torch.nn.Module, args: argparse.Namespace, decayed: Callable[[str, torch.Tensor], bool]) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.95) with `args.weight_decay` on the parameters `decayed(name, p)` picks, 0 on the rest."""
    decay = [p for n, p in model.named_parameters() if decayed(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decayed(n, p)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Use learning rate `lr` in every parameter group."""
    for group in opt.param_groups:
        group["lr"] = lr


def cosine_lr(args: argparse.Namespace, progress: float) -> float:
    """Cosine decay from `args.lr` (progress 0) to `args.min_lr_ratio` x `args.lr` (progress >= 1)."""
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cosine)


def optimizer_step(model: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Backpropagate `loss`, clip the gradient norm to 1 and step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def open_log(out: Path, fields: list[str]) -> tuple[IO[str], csv.DictWriter]:
    """`training_log.csv` in `out`, with its header written."""
    log_file = (out / "training_log.csv").open("w", newline="")
    writer = csv.DictWriter(log_file, fieldnames=fields)
    writer.writeheader()
    return log_file, writer


def save_model(model: Any, out: Path, eos_id: int) -> None:
    """The trained model (safetensors, sdpa attention) and a greedy generation config, saved to `out`."""
    from transformers import GenerationConfig

    model.eval()
    model.config._attn_implementation = "sdpa"
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(
        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, do_sample=False, max_new_tokens=64
    ).save_pretrained(out)


def run_meta(
    args: argparse.Namespace, shape: object, packages: tuple[str, ...], train_seconds: float, train_cpu_seconds: float,
    **extra: object,
) -> dict[str, object]:
    """The run's metadata for metrics.json: versions, threads, timings, `extra` (in order), arguments, shape."""
    return {
        "python": platform.python_version(),
        **{name: __import__(name).__version__ for name in packages},
        "threads": args.threads,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        **extra,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "shape": asdict(shape),  # type: ignore[call-overload]
    }
