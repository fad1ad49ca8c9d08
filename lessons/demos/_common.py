"""Shared torch helpers of the demos: loading the open model, the text they train on, batches, log-probabilities,
greedy completions, histograms and moments, and resized copies of a config."""

from __future__ import annotations

import copy
import math
import random
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from internals.errors import UserError
from lessons.demos._context import DemoContext

#: Vocabularies above this size are remapped to the tokens the demo text uses when a copy is trained from scratch.
BIG_VOCAB = 32768


# --- the model --------------------------------------------------------------------------------------------
def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: Copies of the parameters a demo keeps, by what it trains: the weights; + gradients and Adam's two moments.
_COPIES = {"none": 1, "adapters": 1, "full": 4}
_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2, "auto": 4}


def training_bytes(n_params: int, dtype: str, trains: str = "none", reference: bool = False) -> int:
    """Estimated memory of a demo's copy of the model: parameters x (weights, + gradients and two Adam states
    when it trains every weight, + a frozen reference copy for DPO/GRPO), in `dtype`. Activations come on top."""
    copies = _COPIES[trains] + (1 if reference else 0)
    return int(n_params) * _BYTES.get(str(dtype).replace("torch.", ""), 4) * copies


def free_memory(device: str) -> int | None:
    """Free bytes where the demo's model goes: the CUDA device's free memory (`mem_get_info`, other processes
    counted: a shared box), every CUDA device's for "auto", the available RAM for "cpu"; None if unknown."""
    try:
        if device.startswith("cuda") or device == "auto":
            if not torch.cuda.is_available():
                return None
            if device == "auto":
                return sum(int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count()))
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no estimate is better than a refused demo
        return None


def check_memory(opened: Any, device: str, dtype: str, trains: str = "none", reference: bool = False) -> None:
    """Refuse (a `UserError` saying what to do) when the demo's estimated memory exceeds what is free."""
    try:
        n_params = meta_parameter_count(opened.config)
    except Exception:  # noqa: BLE001 - an architecture the meta count cannot build: no estimate
        return
    need, free = training_bytes(n_params, dtype, trains, reference), free_memory(device)
    if free is not None and need > free:
        what = {"none": "its weights", "adapters": "its weights and adapters",
                "full": "weights, gradients and Adam states"}[trains] + (" plus a reference copy" if reference else "")
        raise UserError(f"this demo needs about {need / 2**30:.1f} GiB on {device} ({n_params / 1e6:.0f}M parameters: "
                        f"{what} in {dtype}) but only {free / 2**30:.1f} GiB is free: use a smaller model, "
                        "--dtype bfloat16, or another --device")


def load_model(opened: Any, ctx: DemoContext, start: float = 0.0, end: float = 0.1, trains: str = "none",
               reference: bool = False):
    """The open model (eval mode) and its tokenizer, as a `Loaded`: on the worker's --device (else CUDA when
    there is one), in its --dtype (else float32: the demos train), within its --max-memory; refused first when
    the estimate of `training_bytes` does not fit in the device's free memory."""
    from internals.inference.loading import load_for_inference

    runtime = getattr(ctx, "runtime", None) or {}
    device = str(runtime.get("device") or pick_device())
    dtype = str(runtime.get("dtype") or "float32")
    if dtype == "auto":
        dtype = "float32"
    check_memory(opened, device, dtype, trains, reference)
    ctx.progress(start, "loading the model")
    loaded = load_for_inference(opened.source, device=device, dtype=dtype, max_memory=runtime.get("max_memory"),
                                trust_remote_code=getattr(opened, "trust_remote_code", False),
                                progress=ctx.sub(start, end))
    loaded.model.eval()
    for p in loaded.model.parameters():
        p.requires_grad_(False)
    if loaded.tokenizer.pad_token_id is None and loaded.tokenizer.eos_token is not None:
        loaded.tokenizer.pad_token = loaded.tokenizer.eos_token
    return loaded


def clipped_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step on `loss` with the gradient norm clipped to 1 (what every training demo does)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def finetune(ctx: DemoContext, model: torch.nn.Module, trained: Any, batch: torch.Tensor, labels: torch.Tensor, *,
             lr: float, steps: int, series: str, progress: tuple[float, float], show_loss: bool = False) -> list[list[float]]:
    """Fine-tune the `trained` parameters of `model` on one padded batch (the next-token loss where `labels` is
    not -100) with AdamW, no weight decay (the tensors not trained stay exact), for `steps` steps or until the
    user stops: each step's loss is a point of `series`, progress runs from `progress[0]` over `progress[1]`
    (with the loss in the message when `show_loss`). The model is left in eval mode; returns [[step, loss]]."""
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
    model.train()
    losses: list[list[float]] = []
    start, span = progress
    for step in range(steps):
        if ctx.stop_requested():
            break
        logits = model(input_ids=batch).logits[:, :-1].float()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append([step, float(loss.detach())])
        ctx.point(series, step, losses[-1][1])
        shown = f": loss {losses[-1][1]:.3f}" if show_loss else ""
        ctx.progress(start + span * (step + 1) / max(1, steps), f"fine-tuning step {step + 1}/{steps}{shown}")
    model.eval()
    return losses


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied ones counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def model_folder(opened: Any) -> Path | None:
    path = Path(opened.source.path)
    if path.is_dir():
        return path
    return path.parent if path.parent.is_dir() else None


def eos_ids(tokenizer: Any, model: torch.nn.Module | None = None) -> set[int]:
    found: set[int] = set()
    for value in (getattr(tokenizer, "eos_token_id", None),
                  getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, (list, tuple)):
            found.update(v for v in value if isinstance(v, int))
    return found


def pad_id(tokenizer: Any) -> int:
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            return value
    return 0


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text`, without special tokens (the fast backend directly: no length warnings)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return list(backend.encode(text, add_special_tokens=False).ids)
    return list(tokenizer.encode(text, add_special_tokens=False))


def decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


# --- text -------------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _stdlib_split() -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        from internals.demo_model_training import corpus

        train, heldout = corpus.split_files(corpus.stdlib_files())
        return tuple(str(f.path) for f in train), tuple(str(f.path) for f in heldout)
    except Exception:  # noqa: BLE001 - no readable stdlib sources: the demos fall back to the shipped sample
        return (), ()


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
    except OSError:
        return ""


def _gather(paths: tuple[str, ...], max_chars: int, per_file: int, seed: int) -> list[str]:
    order = list(paths)
    random.Random(seed).shuffle(order)
    texts, total = [], 0
    for path in order:
        if total >= max_chars:
            break
        text = _read(path)[:per_file]
        if len(text.strip()) < 200:
            continue
        texts.append(text)
        total += len(text)
    return texts


def demo_texts(opened: Any, max_chars: int) -> tuple[list[str], list[str], dict[str, str]]:
    """(training texts, held-out texts, where they came from).

    Training text: Python standard-library files of the demo model's training split (the demo model's corpus),
    shuffled with a fixed seed, at most 20k characters a file, about `max_chars` in all. Held-out text: the
    `heldout_sample.txt` shipped with the open model or the demo model, else held-out standard-library files.
    """
    from internals.demo_path import demo_model_path

    train_paths, heldout_paths = _stdlib_split()
    train = _gather(train_paths, max_chars, 20_000, seed=0)
    heldout, heldout_source = [], ""
    for folder in (model_folder(opened), demo_model_path()):
        sample = folder / "heldout_sample.txt" if folder is not None else None
        if sample is not None and sample.is_file():
            heldout = [_read(str(sample))]
            heldout_source = str(sample)
            break
    if not heldout and heldout_paths:
        heldout = _gather(heldout_paths, max(20_000, max_chars // 10), 5_000, seed=1)
        heldout_source = "held-out Python standard-library files"
    version = ".".join(map(str, sys.version_info[:2]))
    train_source = f"Python {version} standard-library sources (training split of the demo model's corpus)"
    if not train:  # pragma: no cover - a Python without its .py sources
        train, train_source = list(heldout), f"{heldout_source} (no standard-library sources found)"
    if not train:
        raise UserError("no text to train on: neither the Python standard-library sources nor the demo model's "
                        "heldout_sample.txt could be read")
    if not heldout:  # pragma: no cover
        heldout, heldout_source = train[-1:], "the last training file"
    return train, heldout, {"train": train_source, "heldout": heldout_source}


def token_stream(tokenizer: Any, texts: list[str], eos: int | None) -> torch.Tensor:
    ids: list[int] = []
    for text in texts:
        ids.extend(encode(tokenizer, text))
        if eos is not None:
            ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def random_windows(ids: torch.Tensor, batch: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """`batch` random windows of `length` tokens (a training batch)."""
    if ids.numel() <= length:
        raise UserError(f"the demo text has only {ids.numel()} tokens: need more than {length}")
    starts = torch.randint(0, ids.numel() - length, (batch,), generator=gen)
    return torch.stack([ids[s: s + length] for s in starts.tolist()])


def fixed_windows(ids: torch.Tensor, count: int, length: int) -> torch.Tensor:
    """`count` evenly spaced windows of `length` tokens (a fixed evaluation batch)."""
    length = min(length, ids.numel())
    last = ids.numel() - length
    starts = np.linspace(0, last, count).astype(int) if count > 1 else [0]
    return torch.stack([ids[s: s + length] for s in starts])


def lm_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over a [B, T] batch."""
    logits = model(input_ids=batch).logits[:, :-1].float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def token_logprobs(model: torch.nn.Module, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """log p(token_t | tokens_<t) for t = 1..T-1: shape [B, T-1]."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sample_batch(model: torch.nn.Module, prompts: torch.Tensor, n_new: int, temperature: float, seed: int,
                 stop: set[int], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample continuations of [N, P] prompts (softmax(logits / temperature), a torch.Generator seeded with `seed`;
    full recompute each step: short texts only). Returns [N, P + new] ids (padded after a stop id) and the
    completion mask (1 on sampled tokens, the stop id included)."""
    device = model_device(model)
    gen = torch.Generator().manual_seed(seed)
    ids = prompts.to(device)
    mask = torch.zeros_like(ids)
    done = torch.zeros(ids.shape[0], dtype=torch.bool)
    for _ in range(n_new):
        logits = model(input_ids=ids).logits[:, -1].float().cpu()
        probs = torch.softmax(logits / temperature, dim=-1)
        token = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        token = torch.where(done, torch.full_like(token, pad), token)
        ids = torch.cat([ids, token[:, None].to(device)], dim=1)
        mask = torch.cat([mask, (~done).long()[:, None].to(device)], dim=1)
        done |= torch.tensor([int(t) in stop for t in token])
        if bool(done.all()):
            break
    return ids.cpu(), mask.cpu()


@torch.no_grad()
def greedy(model: torch.nn.Module, prompt_ids: list[int], max_new_tokens: int, stop: set[int]) -> list[int]:
    """Greedy continuation (argmax each step, full recompute: short prompts only), stopping at a stop id."""
    device = model_device(model)
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    out: list[int] = []
    for _ in range(max_new_tokens):
        token = int(model(input_ids=ids).logits[0, -1].argmax())
        out.append(token)
        if token in stop:
            break
        ids = torch.cat([ids, torch.tensor([[token]], device=device)], dim=1)
    return out


def completion(model: torch.nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    prompt_ids = encode(tokenizer, prompt) or [pad_id(tokenizer)]
    new = greedy(model, prompt_ids, max_new_tokens, eos_ids(tokenizer, model))
    return {"prompt": prompt, "completion": decode(tokenizer, new), "token_ids": new}


# --- statistics -------------------------------------------------------------------------------------------
def moments(values: torch.Tensor) -> dict[str, Any]:
    """numel, mean, std (population), excess kurtosis (None for a constant), min, max, abs_mean, rms."""
    x = values.detach().to(torch.float64).reshape(-1).cpu()
    x = x[torch.isfinite(x)]
    n = x.numel()
    if n == 0:
        return {"numel": 0, "mean": None, "std": None, "kurtosis": None, "min": None, "max": None,
                "abs_mean": None, "rms": None}
    mean = float(x.mean())
    centred = x - mean
    var = float((centred ** 2).mean())
    kurt = float((centred ** 4).mean()) / var ** 2 - 3.0 if var > 0 else None
    return {"numel": int(values.numel()), "mean": mean, "std": math.sqrt(var), "kurtosis": kurt,
            "min": float(x.min()), "max": float(x.max()), "abs_mean": float(x.abs().mean()),
            "rms": float(x.pow(2).mean().sqrt())}


def histograms(tensors: list[torch.Tensor], bins: int) -> dict[str, Any]:
    """Histograms of several tensors over shared bin edges spanning all their finite values.

    {"edges": [bins+1 floats], "counts": [[bins ints] per tensor]}; each count list sums to that tensor's
    number of finite values."""
    arrays = [t.detach().to(torch.float64).reshape(-1).cpu().numpy() for t in tensors]
    arrays = [a[np.isfinite(a)] for a in arrays]
    lo = min((float(a.min()) for a in arrays if a.size), default=0.0)
    hi = max((float(a.max()) for a in arrays if a.size), default=1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    counts = [np.histogram(a, bins=edges)[0].astype(int).tolist() for a in arrays]
    return {"edges": edges.tolist(), "counts": counts}


# --- configs ----------------------------------------------------------------------------------------------
def _set(config: Any, name: str, value: Any) -> None:
    if hasattr(config, name) or name in getattr(config, "attribute_map", {}):
        setattr(config, name, value)


def resized_config(config: Any, *, layers: int, heads: int, kv_heads: int, head_dim: int,
                   intermediate: int) -> Any:
    """A copy of `config` with fewer layers / a smaller width (same architecture, same vocabulary)."""
    cfg = copy.deepcopy(config)
    hidden = heads * head_dim
    _set(cfg, "num_hidden_layers", layers)
    _set(cfg, "hidden_size", hidden)
    _set(cfg, "num_attention_heads", heads)
    if getattr(cfg, "num_key_value_heads", None) is not None:
        cfg.num_key_value_heads = kv_heads
    if getattr(cfg, "head_dim", None) is not None:
        cfg.head_dim = head_dim
    for name in ("intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size"):
        if getattr(cfg, name, None) is not None:
            setattr(cfg, name, intermediate)
    if getattr(cfg, "n_inner", None) is not None:
        cfg.n_inner = intermediate
    for name in ("num_local_experts", "num_experts", "n_routed_experts"):
        if isinstance(getattr(cfg, name, None), int):
            setattr(cfg, name, min(getattr(cfg, name), 4))
    if isinstance(getattr(cfg, "num_experts_per_tok", None), int):
        cfg.num_experts_per_tok = min(cfg.num_experts_per_tok, 2)
    layer_types = getattr(cfg, "layer_types", None)
    if isinstance(layer_types, list) and layer_types:
        cfg.layer_types = (layer_types * layers)[:layers]
    return cfg


def config_dims(config: Any) -> dict[str, int]:
    heads = int(config.num_attention_heads)
    hidden = int(config.hidden_size)
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    inter = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    return {"layers": int(config.num_hidden_layers), "hidden": hidden, "heads": heads,
            "kv_heads": int(kv), "head_dim": int(head_dim), "intermediate": int(inter),
            "vocab": int(config.vocab_size)}


def new_model(config: Any, seed: int) -> torch.nn.Module:
    """A randomly initialised model for `config` (transformers' own init, seeded), float32."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return model.to(torch.float32)


def meta_parameter_count(config: Any) -> int:
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    return count_parameters(model)
