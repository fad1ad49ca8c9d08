"""Demo `before-after`: one tensor at initialisation and after training.

Trained values come from the open model's safetensors (the store). Initial values: for the demo model (a folder
with init.json), the exact untrained weights rebuilt by `initial_model(path)`; for other models, the model
class's own `_init_weights` applied to a fresh copy of the tensor's module (seeded: a draw from the same
distribution, not the model's actual initial values, which are not published).

Then (finetune_steps > 0) a real fine-tuning: the open model's own weights of the tensor's layer (every
tensor of that decoder layer; the tensor alone when it is in no layer) are trained for a few AdamW steps on the
`lora` demo's sentences, everything else frozen, and the fine-tuned copy is saved (`save_pretrained` plus the
tokenizer files) to `save_to` (default: the cache's demos/before-after), so that
`llm-internals <saved> --base <open model>` shows what this training changed: exactly the trained tensors.

Emits the two histograms at the end as points {"series": "init" | "trained", "x": bin centre, "y": count},
and the fine-tuning loss as {"series": "finetune_loss", "x": step, "y": loss}.
Result keys: tensor, stored_name, shape, init_source ("init.json" | "_init_weights" | "normal"), notes [str],
init {numel, mean, std, kurtosis, min, max, abs_mean, rms}, trained {same}, histogram {edges, init, trained}
(shared edges; each count list sums to numel), init_check (None, or {expected_sum, actual_sum, ok} against
init.json), completions (None, or {prompt, initial, trained}), tensors (None, or per-tensor
[{name, shape, init_std, trained_std, init_kurtosis, trained_kurtosis}] when the whole initial model is known),
finetune (None, or {layer, trained [parameter names], steps, lr, loss [[step, loss]], initial_loss, final_loss,
saved {path, kind "model", command}}), elapsed_s, stopped.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from internals.errors import UserError
from internals.weights import require_weights
from lessons.demos import _common as C
from lessons.demos._context import DemoContext


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    store = require_weights(opened.store, "the before-after demo")
    name = str(params["tensor"]).strip() or default_tensor(opened)
    param_name = _parameter_name(opened, name)
    stored = opened.stored_name_of(name)
    ctx.progress(0.05, f"reading {stored}")
    trained = store.tensor(stored).to(torch.float32).clone()
    notes: list[str] = []

    ctx.progress(0.15, "rebuilding the initial weights")
    initial_model = _demo_initial_model(opened, notes)
    init_check = None
    if initial_model is not None and param_name in initial_model.state_dict():
        init = initial_model.state_dict()[param_name].detach().to(torch.float32).clone()
        init_source = "init.json"
        init_check = _check_against_init_json(opened, param_name, init)
    else:
        initial_model = None
        init, init_source = _module_init(opened, param_name, int(params.get("seed", 0)), notes)
    if tuple(init.shape) != tuple(trained.shape):
        notes.append(f"the stored tensor has shape {list(trained.shape)} and the in-memory parameter "
                     f"{list(init.shape)} (converted at load time): the histograms compare the values only")
    if ctx.stop_requested():
        return {"tensor": param_name, "stored_name": stored, "notes": notes, "elapsed_s": ctx.elapsed()}

    hist = C.histograms([init, trained], int(params["bins"]))
    edges = hist["edges"]
    for series, counts in (("init", hist["counts"][0]), ("trained", hist["counts"][1])):
        for i, count in enumerate(counts):
            ctx.point(series, (edges[i] + edges[i + 1]) / 2, count)

    completions = tensors = None
    if initial_model is not None:
        ctx.progress(0.4, "comparing every tensor")
        tensors = _all_tensors(opened, initial_model)
        if params["completions"] and not ctx.stop_requested():
            completions = _completions(opened, initial_model, params, ctx, notes)
    finetune = None
    if int(params["finetune_steps"]) > 0 and not ctx.stop_requested():
        finetune = fine_tune(opened, param_name, params, ctx)
    ctx.progress(1.0, "done")
    return {
        "finetune": finetune,
        "tensor": param_name, "stored_name": stored, "shape": list(trained.shape), "init_source": init_source,
        "notes": notes, "init": C.moments(init), "trained": C.moments(trained),
        "histogram": {"edges": edges, "init": hist["counts"][0], "trained": hist["counts"][1]},
        "init_check": init_check, "completions": completions, "tensors": tensors,
        "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped,
    }


def default_tensor(opened: Any) -> str:
    """A middle layer's mlp.down_proj.weight, or the nearest equivalent (a down projection, then any matrix)."""
    params = opened.structure.params
    layers = opened.structure.num_layers
    mid = layers // 2 if layers else None
    preferred = f"model.layers.{mid}.mlp.down_proj.weight"
    if preferred in params:
        return preferred
    unique = [p for p in params.values() if p.tied_to is None and p.stored]
    for test in (lambda p: p.layer == mid and p.component == "down",
                 lambda p: p.layer == mid and len(p.shape) == 2,
                 lambda p: len(p.shape) == 2):
        for p in unique:
            if test(p):
                return p.name
    if unique:
        return unique[0].name
    raise UserError("the model has no stored tensors to compare")


def _parameter_name(opened: Any, name: str) -> str:
    params = opened.structure.params
    if name in params:
        info = params[name]
        return info.tied_to or name
    for info in params.values():
        if name in info.stored and info.tied_to is None:
            return info.name
    if opened.store is not None and name in opened.store:
        return name
    raise UserError(f"no tensor named {name!r}: `llm-internals stats MODEL --json` lists the stored tensors")


def _demo_initial_model(opened: Any, notes: list[str]) -> torch.nn.Module | None:
    folder = C.model_folder(opened)
    if folder is None or not (folder / "init.json").is_file():
        return None
    try:
        from internals.demo_model_training.init_weights import initial_model

        return initial_model(folder)
    except Exception as exc:  # noqa: BLE001 - fall back to the module's own init
        notes.append(f"init.json is present but the initial model could not be rebuilt ({exc}); "
                     "using the model class's _init_weights instead")
        return None


def _check_against_init_json(opened: Any, name: str, init: torch.Tensor) -> dict[str, Any] | None:
    import json

    folder = C.model_folder(opened)
    try:
        expected = json.loads((folder / "init.json").read_text())["tensors"][name]["sum"]
    except (OSError, KeyError, ValueError, TypeError):
        return None
    actual = float(init.double().sum())
    scale = float(init.double().abs().sum()) or 1.0
    return {"expected_sum": expected, "actual_sum": actual, "ok": abs(actual - expected) <= 1e-6 * scale + 1e-9}


def _module_init(opened: Any, name: str, seed: int, notes: list[str]) -> tuple[torch.Tensor, str]:
    """`_init_weights` of the model class on a fresh copy of the parameter's module (NaN-filled first, so a
    module the method does not handle is detected)."""
    from internals.structure import build_meta_model

    meta = build_meta_model(opened.config, getattr(opened, "trust_remote_code", False))
    module_name, _, attr = name.rpartition(".")
    try:
        module = meta.get_submodule(module_name) if module_name else meta
    except AttributeError:
        raise UserError(f"{name} is not a parameter of the model's modules") from None
    fresh = copy.deepcopy(module).to_empty(device="cpu")
    with torch.no_grad():
        for p in fresh.parameters(recurse=False):
            p.fill_(math.nan)
    torch.manual_seed(seed)
    with torch.no_grad():
        meta._init_weights(fresh)
    values = getattr(fresh, attr).detach().to(torch.float32).clone()
    if bool(torch.isfinite(values).all()):
        notes.append(f"initial values: {type(meta).__name__}._init_weights on a fresh {type(module).__name__} "
                     f"(seed {seed}): the distribution this model starts from, not its actual initial draw")
        return values, "_init_weights"
    std = float(getattr(opened.config, "initializer_range", 0.02) or 0.02)
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(values.shape, generator=gen) * std
    notes.append(f"{type(meta).__name__}._init_weights does not initialise {type(module).__name__}.{attr}: "
                 f"showing N(0, initializer_range={std}) instead")
    return values, "normal"


def _all_tensors(opened: Any, initial_model: torch.nn.Module) -> list[dict[str, Any]]:
    out = []
    store = opened.store
    for name, init in initial_model.state_dict().items():
        try:
            stored = opened.stored_name_of(name)
        except UserError:
            continue
        trained = store.tensor(stored).to(torch.float32)
        a, b = C.moments(init), C.moments(trained)
        out.append({"name": name, "shape": list(init.shape), "init_std": a["std"], "trained_std": b["std"],
                    "init_kurtosis": a["kurtosis"], "trained_kurtosis": b["kurtosis"]})
    return out


def _completions(opened: Any, initial_model: torch.nn.Module, params: dict[str, Any], ctx: DemoContext,
                 notes: list[str]) -> dict[str, Any] | None:
    try:
        loaded = C.load_model(opened, ctx, 0.5, 0.8)
    except UserError as exc:
        notes.append(f"no completions: {exc}")
        return None
    prompt, n = str(params["prompt"]), int(params["max_new_tokens"])
    initial_model.to(C.model_device(loaded.model))
    before = C.completion(initial_model, loaded.tokenizer, prompt, n)
    after = C.completion(loaded.model, loaded.tokenizer, prompt, n)
    return {"prompt": prompt, "initial": before["completion"], "trained": after["completion"]}


def fine_tune(opened: Any, param_name: str, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    """Train the open model's real weights of `param_name`'s layer briefly, then save the fine-tuned copy."""
    from lessons.demos.lora import _batch
    from lessons.demos.saving import save_model

    info = opened.structure.params.get(param_name)
    layer = info.layer if info is not None else None
    loaded = C.load_model(opened, ctx, 0.82, 0.86)
    model = loaded.model
    names = {n for n, _ in model.named_parameters()}
    if layer is not None:
        chosen = sorted(n for n in names if opened.structure.params.get(n) is not None
                        and opened.structure.params[n].layer == layer)
    else:
        chosen = [param_name] if param_name in names else []
    if not chosen:
        raise UserError(f"{param_name} is not a trainable parameter of the loaded model: pick another tensor")
    trained = [p for n, p in model.named_parameters() if n in set(chosen)]
    for p in trained:
        p.requires_grad_(True)
    batch, labels = _batch(loaded.tokenizer, C.model_device(model))
    steps, lr = int(params["finetune_steps"]), float(params["lr"])
    losses = C.finetune(ctx, model, trained, batch, labels, lr=lr, steps=steps, series="finetune_loss",
                        progress=(0.86, 0.1))
    ctx.progress(0.97, "saving the fine-tuned copy")
    saved = save_model(model, params, "before-after", opened)
    return {"layer": layer, "trained": chosen, "steps": len(losses), "lr": lr, "loss": losses,
            "initial_loss": losses[0][1] if losses else None, "final_loss": losses[-1][1] if losses else None,
            "saved": saved}
