"""The lesson demos: what each one is, what it needs, its parameters, and `run_demo`, the dispatch the worker calls.

Plain Python only: this module (and `lessons.demos`) never imports torch. A demo's own module is imported by
`run_demo` when the demo runs, in the model worker.

Every demo is called as `run(opened, params, ctx)` with an `OpenedModel`, its parameters (defaults, then the
quick-mode overrides when `params["quick"]` is true, then what the caller passed), and a `DemoContext` that
streams live points (`{"series": name, "x": number, "y": number}`), reports progress and says when to stop.
It returns a JSON-able dict: the final result (see each demo's module for its keys).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from internals.errors import UserError

#: The line a demo gives when its optional dependencies are missing.
TRAIN_EXTRA_HINT = "install with: pip install 'llm-internals[train]'"

Emit = Callable[[dict[str, Any]], None]
Progress = Callable[[float, str], None]
ShouldStop = Callable[[], bool]


class MissingExtraError(UserError):
    """A demo needs a package of the `train` extra (peft, trl) that is not installed."""


@dataclass(frozen=True)
class DemoInfo:
    """One demo. `requires`: packages it cannot run without (beyond torch and transformers); `optional`:
    packages it uses when present; `params`: parameter defaults; `quick`: overrides for `params={"quick": True}`
    (the short test mode)."""

    id: str
    title: str
    requires: list[str]
    description: str
    optional: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    module: str = ""  # lessons.demos.<module>, imported when the demo runs


DEMOS: dict[str, DemoInfo] = {
    d.id: d
    for d in [
        DemoInfo(
            id="pretrain",
            title="Pre-training from scratch",
            requires=[],
            description=(
                "Trains a freshly initialised copy of the open model's architecture (same config, seeded random "
                "init; shrunk when the model has more than max_params parameters) on Python standard-library "
                "source for a few hundred steps, streaming the training loss and the held-out loss. The loss "
                "starts near ln(vocabulary size) and falls; greedy samples show text taking shape. When the open "
                "model ships its own training_log.csv (the demo model does), the result includes it."
            ),
            params=dict(steps=300, batch=8, seq_len=64, lr=3e-3, warmup=20, eval_every=25, seed=0,
                        sample_prompt="def ", sample_tokens=32, max_params=50_000_000, max_chars=400_000),
            quick=dict(steps=25, batch=4, seq_len=32, lr=1e-2, warmup=3, eval_every=5, sample_tokens=8,
                       max_chars=40_000),
            module="pretrain",
        ),
        DemoInfo(
            id="before-after",
            title="Weights before and after training",
            requires=[],
            description=(
                "Histograms (shared bin edges), standard deviation and kurtosis of one tensor at initialisation "
                "and after training. For the demo model the untrained weights are rebuilt exactly from init.json "
                "(and greedy completions of the initial and trained models are compared); for other models the "
                "initialisation is the model class's own _init_weights applied to a fresh copy of that one module. "
                "Then a real fine-tuning: the tensor's whole layer is trained for a few steps on short functions, "
                "the rest frozen, and the copy is saved (save_to; default under the cache) with the command that "
                "opens it against the model: the diff shows exactly the trained tensors changed."
            ),
            params=dict(tensor="", bins=50, prompt="def __init__(self", max_new_tokens=24, completions=True, seed=0,
                        finetune_steps=20, lr=2e-3, save_to=""),
            quick=dict(bins=20, max_new_tokens=6, finetune_steps=3),
            module="before_after",
        ),
        DemoInfo(
            id="lora",
            title="LoRA fine-tuning with peft",
            requires=["peft"],
            description=(
                "Wraps the model with a peft LoRA adapter (r=8, alpha=16 on q, k, v, o; targets='all' for every "
                "linear projection), counts trainable and frozen parameters with peft and with the formula "
                "r*(in+out) per module, shows A and B (B is zero at init, so the wrapped model starts identical), "
                "fine-tunes on a few repeated sentences while streaming the loss, and compares greedy completions "
                "before and after; ends with the histogram of one module's merged update (alpha/r)*B@A, and saves the "
                "adapter (save_to; default under the cache) with the command that opens it against the model."
            ),
            params=dict(r=8, alpha=16, targets="attention", steps=30, lr=5e-3, seed=0, module="",
                        prompt="def greet(name):\n", max_new_tokens=20, bins=40, save_to=""),
            quick=dict(steps=5, lr=2e-2, max_new_tokens=6, bins=20),
            module="lora",
        ),
        DemoInfo(
            id="dpo",
            title="Direct preference optimisation, by hand and with trl",
            requires=[],
            optional=["trl"],
            description=(
                "The DPO loss -log sigmoid(beta*[(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))]) "
                "on preference pairs, from the model's own sequence log-probabilities. The reference is the open "
                "model; the policy is a copy trained for a few DPO steps (the loss starts at ln 2 = 0.693, the "
                "implicit rewards beta*(log pi - log ref) at 0). The final value is recomputed by trl's own "
                "DPOTrainer loss code when trl is installed, and the two must agree to 1e-5."
            ),
            params=dict(beta=0.1, steps=10, lr=1e-4, seed=0),
            quick=dict(steps=2, lr=1e-3),
            module="dpo",
        ),
        DemoInfo(
            id="grpo",
            title="GRPO: group-relative policy optimisation",
            requires=[],
            description=(
                "A task whose answer a program checks (task='copy': repeat a line the prompt shows twice; "
                "task='add': one more sum after three examples). Samples a group of G completions (seeded), "
                "rewards each 1 if its text starts with the answer exactly, else 0, turns rewards into advantages "
                "A_i = (r_i - mean r) / std r (all zero when std is 0), and takes GRPO steps on the clipped "
                "objective with the KL penalty beta * (pi_ref/pi - log(pi_ref/pi) - 1) to a frozen reference "
                "(beta = 0 loads no reference, as in trl); shows how each completion's log-probability moved."
            ),
            params=dict(task="copy", text="red green blue", group=8, temperature=1.0, seed=0,
                        lr=0.005, clip=0.2, beta=0.04, updates=2),
            quick=dict(group=6, updates=2),
            module="grpo",
        ),
        DemoInfo(
            id="distill",
            title="Knowledge distillation into a smaller student",
            requires=[],
            description=(
                "A student with the same tokenizer and vocabulary but fewer layers and a smaller hidden size "
                "(random init) learns the open model's next-token distributions: loss T^2 * KL(p_T || q_T) with "
                "temperature T on Python standard-library text. Streams the KL falling, on training batches and "
                "on a fixed held-out batch at T=1."
            ),
            params=dict(temperature=2.0, steps=150, batch=8, seq_len=64, lr=3e-3, seed=0, eval_every=10, save_to="",
                        student_layers=0, student_hidden=0, max_chars=200_000),
            quick=dict(steps=15, batch=4, seq_len=32, eval_every=5, max_chars=30_000),
            module="distill",
        ),
        DemoInfo(
            id="teacher-sft",
            title="Sequence-level distillation: SFT on the teacher's samples (how R1-Distill was made)",
            requires=[],
            description=(
                "The teacher (the open model) samples completions of short prompts cut from Python "
                "standard-library text; the student (a 1-layer copy of the teacher's config, randomly "
                "initialised) is fine-tuned on those texts with next-token cross-entropy on the completion "
                "tokens only. No logits are shared: this is what DeepSeek-R1-Distill did with R1's 800k samples. "
                "Streams the student's loss on training samples and on held-out teacher samples, against the "
                "teacher's own loss on them."
            ),
            params=dict(samples=32, prompt_tokens=8, gen_tokens=24, temperature=1.0, steps=80, batch=8, lr=3e-3, save_to="",
                        seed=0, eval_every=10, max_chars=30_000),
            quick=dict(samples=8, gen_tokens=12, steps=12, batch=4, eval_every=4, max_chars=10_000),
            module="teacher_sft",
        ),
        DemoInfo(
            id="one-head",
            title="One token through one attention head, in numbers",
            requires=[],
            description=(
                "Hooks the real attention module of one layer: for one query position and one head, the query "
                "vector (first dims), each earlier key's score q.k/sqrt(d_head) (after RoPE), the softmax weights and "
                "the weighted sum of values, computed from the module's own projections and rotary embedding, and "
                "checked against what the module itself fed its output projection and the weights it returned "
                "(to 1e-5)."
            ),
            params=dict(prompt="def add(a, b):\n    return a + b", layer=0, head=0, position=-1, dims=8),
            quick=dict(),
            module="one_head",
        ),
        DemoInfo(
            id="sampling",
            title="The next-token distribution at several temperatures; top-k and top-p",
            requires=[],
            description=(
                "One forward pass of the open model on a prompt; the next-token distribution softmax(logits / T) "
                "at several temperatures (streamed as one series per temperature over the most likely tokens), its "
                "entropy, and the tokens that top-k and top-p (nucleus) sampling would keep at each temperature."
            ),
            params=dict(prompt="def ", temperatures="0.5,1.0,2.0", top=20, top_k=10, top_p=0.9),
            quick=dict(top=10),
            module="sampling",
        ),
        DemoInfo(
            id="pass-at-k",
            title="pass@1 over k samples versus majority vote",
            requires=[],
            description=(
                "Checkable prompts (copy a line the prompt shows twice); k samples each at the recommended "
                "temperature and top-p of DeepSeek-R1's evaluation; each answer checked exactly. Reports pass@1 "
                "(the mean share of correct samples, as DeepSeek-R1 reports it), the unbiased pass@k, and the "
                "accuracy of the majority-voted answer (cons@k)."
            ),
            params=dict(texts="red green blue|one two three|alpha beta gamma|cat dog bird", samples=8,
                        temperature=0.6, top_p=0.95, seed=0),
            quick=dict(texts="red green blue|one two three|cat dog bird", samples=6),
            module="pass_at_k",
        ),
    ]
}


def demo_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full parameter set a demo runs with: defaults, quick overrides, then `params` (types checked)."""
    info = _info(name)
    given = dict(params or {})
    quick = bool(given.pop("quick", False))
    merged = dict(info.params)
    if quick:
        merged.update(info.quick)
    unknown = sorted(set(given) - set(info.params))
    if unknown:
        raise UserError(f"demo {name!r} has no parameter {unknown[0]!r}; its parameters: "
                        f"{', '.join(sorted(info.params)) or 'none'} (and quick)")
    for key, value in given.items():
        merged[key] = _coerce(name, key, value, info.params[key])
    merged["quick"] = quick
    return merged


def run_demo(name: str, opened: Any, params: dict[str, Any] | None = None, emit: Emit | None = None,
             progress: Progress | None = None, should_stop: ShouldStop | None = None,
             yield_lock: Callable[[], Any] | None = None, runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run demo `name` on the opened model and return its result dict.

    emit(point) streams live plot points, progress(fraction, message) reports progress, should_stop() is
    polled between steps (a stopped demo returns what it has, with "stopped": true). yield_lock() (the
    worker's) lets other requests use the device between two steps; runtime holds the worker's device, dtype
    and max_memory, which the demo's copy of the model honours. Raises `UserError` for an
    unknown demo or bad parameters, `MissingExtraError` (a UserError) when a required package is missing.
    """
    info = _info(name)
    values = demo_params(name, params)
    for package in info.requires:
        require_package(package, name)
    module = importlib.import_module(f"lessons.demos.{info.module}")
    from lessons.demos._context import DemoContext

    ctx = DemoContext(emit=emit, progress=progress, should_stop=should_stop, yield_lock=yield_lock,
                      runtime=runtime)
    result = module.run(opened, values, ctx)
    result.setdefault("demo", name)
    result.setdefault("params", values)
    result.setdefault("stopped", ctx.stopped)
    return result


def require_package(package: str, demo: str):
    """Import `package` or raise `MissingExtraError` with the install hint."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingExtraError(f"the {demo} demo needs {package}, which is not installed: {TRAIN_EXTRA_HINT}") from None


def _info(name: str) -> DemoInfo:
    info = DEMOS.get(name)
    if info is None:
        raise UserError(f"unknown demo {name!r}; known demos: {', '.join(DEMOS)}")
    return info


def _coerce(demo: str, key: str, value: Any, default: Any) -> Any:
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise UserError(f"demo {demo!r}: parameter {key!r} must be a {kind.__name__} (got {value!r})") from None


def register_demos() -> None:
    """Register every demo with the worker's demo registry (internals/worker/demos.py), which the engine's
    `run_demo` operation reads; the composition root calls this, and importing this module does it too, so a
    process that uses the lessons (the explorer run in-process, tests) has them. Idempotent."""
    from internals.worker.demos import register

    for info in DEMOS.values():
        register(info.id, functools.partial(run_demo, info.id),
                 {"title": info.title, "requires": list(info.requires), "optional": list(info.optional),
                  "params": dict(info.params), "description": info.description})
    from lessons.answer_op import register_answer_op

    register_answer_op()  # the exercises' model answers run through the same mechanism


register_demos()
