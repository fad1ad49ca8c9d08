"""Demo `pretrain`: next-token pre-training of a freshly initialised copy of the open model's architecture.

Streams {"series": "loss", "x": step, "y": training loss} every step and {"series": "heldout_loss", ...} every
`eval_every` steps (and at steps 0 and the last). Result keys:
  model {architecture, parameters, layers, hidden_size, heads, kv_heads, intermediate_size, vocab_size,
         shrunk, vocab_remapped, init}, notes [str], text {train, heldout, train_tokens, heldout_tokens},
  steps, batch, seq_len, lr, tokens_per_step, tokens_seen, ln_vocab, initial_loss, final_loss,
  loss [[step, loss]], heldout_loss [[step, loss]], samples [{step, text}], shipped_log (None or
  {path, columns, rows: [{column: value}]}), elapsed_s, stopped.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from typing import Any

import torch

from lessons.demos import _common as C
from lessons.demos._context import DemoContext

SHRUNK_DIMS = dict(layers=2, heads=4, head_dim=32, intermediate=384)


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    from internals.inference.loading import load_tokenizer

    ctx.progress(0.0, "reading the config and the tokenizer")
    base = opened.config
    if base is None:
        from internals.errors import UserError

        raise UserError("the pretrain demo needs the model's config.json")
    tokenizer = load_tokenizer(opened.source, getattr(opened, "trust_remote_code", False))
    config, notes = _training_config(base, int(params["max_params"]))
    eos = next(iter(sorted(C.eos_ids(tokenizer))), None)

    ctx.progress(0.03, "tokenizing the training text")
    train_texts, heldout_texts, sources = C.demo_texts(opened, int(params["max_chars"]))
    train_ids = C.token_stream(tokenizer, train_texts, eos)
    heldout_ids = C.token_stream(tokenizer, heldout_texts, eos)

    vocab_map = None
    if int(config.vocab_size) > C.BIG_VOCAB:
        vocab_map, train_ids, heldout_ids = _remap_vocab(config, train_ids, heldout_ids, eos)
        notes.append(f"the vocabulary of {base.vocab_size:,} tokens is reduced to the {config.vocab_size:,} tokens "
                     "the demo text uses (so the output layer stays small); the loss starts near ln of that")

    seed = int(params["seed"])
    model, init = _initial_model(opened, config, seed, shrunk=bool(notes))
    device = C.pick_device()
    model.to(device).train()
    heldout_ids = heldout_ids.to(device)
    steps, batch, seq_len = int(params["steps"]), int(params["batch"]), int(params["seq_len"])
    eval_batch = C.fixed_windows(heldout_ids, max(4, batch), seq_len + 1)
    lr, warmup = float(params["lr"]), max(0, int(params["warmup"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, steps))
    gen = torch.Generator().manual_seed(seed)
    prompt = str(params["sample_prompt"])
    sample_steps = sorted({0, steps // 2, steps})
    eval_every = max(1, int(params["eval_every"]))

    losses: list[list[float]] = []
    heldout: list[list[float]] = []
    samples: list[dict[str, Any]] = []
    step = 0
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            heldout.append([step, _evaluate(model, eval_batch)])
            ctx.point("heldout_loss", step, heldout[-1][1])
        if step in sample_steps:
            samples.append({"step": step, "text": _sample(model, tokenizer, prompt, vocab_map,
                                                          int(params["sample_tokens"]), eos)})
        if step == steps or ctx.stop_requested():
            break
        batch_ids = C.random_windows(train_ids, batch, seq_len + 1, gen).to(device)
        loss = C.lm_loss(model, batch_ids)
        C.clipped_step(model, optimizer, loss)
        schedule.step()
        losses.append([step, float(loss.detach())])
        ctx.point("loss", step, losses[-1][1])
        ctx.progress(0.05 + 0.95 * (step + 1) / max(1, steps), f"step {step + 1}/{steps}: loss {losses[-1][1]:.3f}")

    dims = C.config_dims(config)
    return {
        "model": {"architecture": type(model).__name__, "parameters": C.count_parameters(model),
                  "layers": dims["layers"], "hidden_size": dims["hidden"], "heads": dims["heads"],
                  "kv_heads": dims["kv_heads"], "intermediate_size": dims["intermediate"],
                  "vocab_size": dims["vocab"], "shrunk": _shrunk(base, config), "vocab_remapped": vocab_map is not None,
                  "init": init},
        "notes": notes,
        "text": {**sources, "train_tokens": int(train_ids.numel()), "heldout_tokens": int(heldout_ids.numel())},
        "steps": len(losses), "batch": batch, "seq_len": seq_len, "lr": lr,
        "tokens_per_step": batch * seq_len, "tokens_seen": len(losses) * batch * seq_len,
        "ln_vocab": math.log(dims["vocab"]),
        "initial_loss": losses[0][1] if losses else None, "final_loss": losses[-1][1] if losses else None,
        "loss": losses, "heldout_loss": heldout, "samples": samples,
        "shipped_log": read_training_log(opened),
        "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped,
    }


def _training_config(base: Any, max_params: int) -> tuple[Any, list[str]]:
    config = copy.deepcopy(base)
    total = C.meta_parameter_count(config)
    if total <= max_params:
        return config, []
    dims = C.config_dims(base)
    kv = SHRUNK_DIMS["heads"] if dims["kv_heads"] == dims["heads"] else max(1, SHRUNK_DIMS["heads"] // 2)
    config = C.resized_config(base, layers=min(dims["layers"], SHRUNK_DIMS["layers"]), heads=SHRUNK_DIMS["heads"],
                              kv_heads=kv, head_dim=SHRUNK_DIMS["head_dim"], intermediate=SHRUNK_DIMS["intermediate"])
    small = C.config_dims(config)
    return config, [f"the open model has {total:,} parameters (more than {max_params:,}), so the demo trains a "
                    f"shrunk copy of its architecture: {small['layers']} layers, hidden size {small['hidden']}, "
                    f"{small['heads']} heads ({small['kv_heads']} KV heads), MLP {small['intermediate']} "
                    f"(the model has {dims['layers']} layers, hidden size {dims['hidden']})"]


def _shrunk(base: Any, config: Any) -> bool:
    a, b = C.config_dims(base), C.config_dims(config)
    return any(a[k] != b[k] for k in ("layers", "hidden", "heads", "intermediate"))


def _remap_vocab(config: Any, train_ids: torch.Tensor, heldout_ids: torch.Tensor, eos: int | None):
    used = torch.unique(torch.cat([train_ids, heldout_ids]))
    table = torch.full((int(config.vocab_size),), -1, dtype=torch.long)
    table[used] = torch.arange(used.numel())
    config.vocab_size = int(used.numel())
    mapped_eos = int(table[eos]) if eos is not None and eos < table.numel() and table[eos] >= 0 else None
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if hasattr(config, name):
            setattr(config, name, mapped_eos)
    return {"used": used, "table": table}, table[train_ids], table[heldout_ids]


def _initial_model(opened: Any, config: Any, seed: int, shrunk: bool) -> tuple[torch.nn.Module, str]:
    """The demo model's own initialisation (its init.json recipe and seed) when the copy is exact, else
    transformers' init for the architecture, seeded with `seed`."""
    folder = C.model_folder(opened)
    init_file = folder / "init.json" if folder is not None else None
    if not shrunk and init_file is not None and init_file.is_file() and config.model_type == "qwen2":
        try:
            from internals.demo_model_training.init_weights import initialise_

            info = json.loads(init_file.read_text())
            model = C.new_model(config, seed)
            initialise_(model, int(info["seed"]), float(config.initializer_range))
            return model, f"the demo model's own initialisation (init.json, seed {info['seed']})"
        except Exception:  # noqa: BLE001 - fall back to transformers' init
            pass
    return C.new_model(config, seed), f"transformers' initialisation for {config.model_type}, seed {seed}"


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def _evaluate(model: torch.nn.Module, batch: torch.Tensor) -> float:
    model.eval()
    try:
        return float(C.lm_loss(model, batch))
    finally:
        model.train()


def _sample(model: torch.nn.Module, tokenizer: Any, prompt: str, vocab_map: dict | None, n: int,
            eos: int | None) -> str:
    ids = C.encode(tokenizer, prompt)
    stop = set() if eos is None else {eos}
    if vocab_map is not None:
        table = vocab_map["table"]
        ids = [int(table[i]) for i in ids if i < table.numel() and table[i] >= 0]
        stop = {int(table[e]) for e in stop if table[e] >= 0}
    ids = ids or [0]
    model.eval()
    try:
        new = C.greedy(model, ids, n, stop)
    finally:
        model.train()
    if vocab_map is not None:
        new = [int(vocab_map["used"][i]) for i in new]
    return prompt + C.decode(tokenizer, new)


def read_training_log(opened: Any) -> dict[str, Any] | None:
    """The open model's shipped training_log.csv (the demo model has one), numbers parsed; None when absent."""
    folder = C.model_folder(opened)
    path = folder / "training_log.csv" if folder is not None else None
    if path is None or not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = [{k: _number(v) for k, v in row.items() if k is not None} for row in reader]
    return {"path": str(path), "columns": columns, "rows": rows}


def _number(value: str | None) -> Any:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
