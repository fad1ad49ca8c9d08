"""Argument parsing and dispatch for `llm-internals`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from internals.errors import UserError

COMMANDS = ("summary", "stats", "spectrum", "attention", "lens", "experts", "generate", "worker", "explore", "diff",
            "activations", "patch", "attribute")

_EPILOG = """\
commands:
  (none) [MODEL]       open the explorer (the bundled demo model when MODEL is omitted)
  summary [MODEL]      architecture facts and parameter counts
  stats [MODEL]        exact statistics and histograms of stored tensors
  spectrum [MODEL]     singular values, stable rank and power-law fits of every weight matrix
  attention [MODEL]    attention weights of one layer on a prompt
  lens [MODEL]         logit lens: top next tokens at every layer
  experts [MODEL]      which experts a mixture-of-experts model routes each token to
  generate [MODEL]     greedy or sampled continuation of a prompt
  activations [MODEL]  residual stream norms, massive activations, attention sinks
  patch [MODEL]        activation patching: what restores a clean answer in a corrupted run
  attribute [MODEL]    direct logit attribution: what each layer and head adds to one logit
  worker [MODEL]       run a shared model worker on a Unix socket
  diff BASE TUNED      what fine-tuning, distillation or a LoRA adapter changed (weights; --prompt: behaviour)

MODEL: a Hugging Face hub id (read from the local cache), a folder, a .safetensors file or a config.json.
Examples:
  llm-internals                                   # explore the demo model
  llm-internals summary deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --json
  llm-internals stats ./my-model --tensor 'model.layers.0.*' --bins 32 --json
  llm-internals attention --prompt "def __init__(self):" --layer 1 --json
  llm-internals diff Qwen/Qwen2.5-Math-1.5B deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --rank
  llm-internals experts --demo moe --prompt "def add(a, b):" --json
  llm-internals ./my-finetune --base Qwen/Qwen2.5-0.5B   # explore a fine-tuned copy against its base
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one `error:` line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)")


def fail(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


#: Commands that run a while in the background or own other processes: they end the usual way.
LONG_RUNNING = ("explore", "worker")


def run_and_exit(entry: Callable[[], int | None]) -> NoReturn:
    """Run the command line `entry` as the whole process; a one-shot command ends without the interpreter's
    teardown.

    Once numba has set up its compiler, Python's own teardown (freeing its registries) takes 0.1-0.3 s that
    the user of a one-shot command (`stats FILE`) waits for after the answer is out. So: run `entry`, flush
    the output, run the atexit handlers (logging, temporary folders), then `os._exit` with its status. The
    explorer and the worker (`LONG_RUNNING`) exit as usual. Only for process entry points (`python -m
    internals.cli`, `python -m llm_internals`, the console script), never for `main()` in a process that
    goes on."""
    import atexit

    args = sys.argv[1:]
    if not args or args[0] not in COMMANDS or args[0] in LONG_RUNNING:
        sys.exit(entry())
    try:
        code: int | str | None = entry()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, (int, str)) or exc.code is None else 1
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    atexit._run_exitfuncs()
    os._exit(code or 0)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="hub id, folder, .safetensors file or config.json (default: the bundled demo model)")
    p.add_argument("--revision", help="hub revision (branch, tag or commit) when MODEL is a hub id")
    p.add_argument("--demo", choices=("dense", "moe"), default=None,
                   help="open a bundled demo model instead of MODEL: dense (Qwen2, the default) or moe (Mixtral, 4 experts)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model folder's own Python code to run (only for authors you trust)")


def _runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connect", metavar="PATH", help="use a running worker (`llm-internals worker --socket PATH`)")
    p.add_argument("--no-worker", action="store_true", help="run the model in this process instead of a worker")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu or auto (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--max-memory", default=None, metavar="SPEC",
                   help="per-device memory for models larger than one GPU, e.g. '0=20GiB,cpu=64GiB'")


def _prompt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", required=True, help="the text to run through the model")


def _forward_parser(sub: Any, name: str, help: str, *options: tuple[str, dict[str, Any]], prompt: bool = True,
                    json_help: str | None = None) -> argparse.ArgumentParser:
    """A forward-pass command's parser: the model, --prompt (unless `prompt` is False), the command's own
    `options` ((flag, add_argument keywords), in order), --json and the runtime options."""
    p = sub.add_parser(name, help=help)
    _model_args(p)
    if prompt:
        _prompt_args(p)
    for flag, keywords in options:
        p.add_argument(flag, **keywords)
    p.add_argument("--json", action="store_true", help=json_help)
    _runtime_args(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llm-internals", description="Explore the insides of a large language model in the terminal.",
                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from internals import __version__

    parser.add_argument("--version", action="version", version=f"llm-internals {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("explore", help="open the explorer (the default command)")
    _model_args(p)
    _runtime_args(p)
    _base_arg(p)

    p = sub.add_parser("summary", help="architecture facts and parameter counts")
    _model_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("stats", help="exact statistics of stored tensors")
    _model_args(p)
    p.add_argument("--tensor", metavar="GLOB", help="only tensors whose stored name matches (e.g. 'model.layers.0.*')")
    p.add_argument("--bins", type=_positive_int, default=64, help="histogram bins (default 64)")
    p.add_argument("--json", action="store_true", help="print {\"tensors\": [...]}")
    p.add_argument("--no-cache", action="store_true", help="recompute instead of reading the statistics cache")
    p.add_argument("--device", default=None,
                   help="count 8/16-bit bit patterns on this torch device (cuda, cuda:1; default: CPU kernels)")

    p = sub.add_parser("spectrum", help="singular values, stable rank and heavy-tailed fits of weight matrices")
    _model_args(p)
    p.add_argument("--tensor", metavar="GLOB", help="only matrices whose stored name matches (e.g. '*.q_proj.weight')")
    p.add_argument("--json", action="store_true", help="print {\"tensors\": [...]}")
    p.add_argument("--no-cache", action="store_true", help="recompute instead of reading the spectrum cache")

    _forward_parser(sub, "attention", "attention weights of one layer on a prompt",
                    ("--layer", dict(type=int, default=0, help="layer index (default 0; negative counts from the end)")))
    _forward_parser(sub, "lens", "logit lens: top next tokens at every layer and position",
                    ("--top", dict(type=_positive_int, default=5, help="tokens per position (default 5)")),
                    ("--track", dict(action="append", metavar="TOKEN",
                                     help="also follow this token (exactly one token; repeatable): its rank and probability "
                                          "after every attention block and every layer at the last position")))
    _forward_parser(sub, "activations", "residual stream norms, massive activations and attention sinks")
    _forward_parser(sub, "patch", "activation patching between a clean and a corrupted prompt",
                    ("--clean", dict(required=True, help="the prompt whose answer is restored")),
                    ("--corrupt", dict(required=True, help="the corrupted prompt (the same number of tokens)")),
                    ("--target", dict(metavar="TOKEN", help="the answer token (default: the clean run's top token)")),
                    prompt=False)
    _forward_parser(sub, "attribute", "direct logit attribution of the next token",
                    ("--target", dict(metavar="TOKEN", help="the token whose logit is split (default: the top token)")))
    _forward_parser(sub, "experts", "which experts each token is routed to, per MoE layer",
                    json_help="print one JSON object (docs/contracts.md, \"Expert routing\")")
    _forward_parser(sub, "generate", "continue a prompt",
                    ("--max-new-tokens", dict(type=_positive_int, default=32)),
                    ("--temperature", dict(type=float, default=0.0, help="0 = greedy (default)")),
                    ("--seed", dict(type=int, default=0)))

    p = sub.add_parser("diff", help="compare two models: what fine-tuning, distillation or an adapter changed")
    p.add_argument("base", metavar="BASE", help="the original model: hub id, folder or .safetensors file")
    p.add_argument("tuned", metavar="TUNED", help="the changed model (same kinds), or a PEFT LoRA adapter folder")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model folder's own Python code to run (only for authors you trust)")
    p.add_argument("--tensor", metavar="GLOB", help="only tensors whose name matches (e.g. 'model.layers.0.*')")
    p.add_argument("--bins", type=_positive_int, default=64, help="histogram bins of ΔW (default 64)")
    p.add_argument("--rank", action="store_true", help="singular values, stable and effective ranks of every 2-D ΔW")
    p.add_argument("--prompt", default=None, help="also compare the two models' outputs on this text")
    p.add_argument("--top", type=_positive_int, default=10, help="tokens that rose / fell most (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object (docs/contracts.md)")
    p.add_argument("--no-cache", action="store_true", help="recompute instead of reading the diff cache")
    p.add_argument("--device", default=None, help="for --prompt: cuda, cuda:1, cpu or auto")
    p.add_argument("--dtype", default=None, help="for --prompt: bfloat16, float16 or float32")
    p.add_argument("--max-memory", default=None, metavar="SPEC", help="for --prompt: e.g. '0=20GiB,cpu=64GiB'")

    p = sub.add_parser("worker", help="serve one model to several explorers on a Unix socket")
    _model_args(p)
    p.add_argument("--socket", required=True, metavar="PATH", help="socket path (its folder is made private, 0700)")
    p.add_argument("--socket-group", metavar="GROUP",
                   help="let the members of this Unix group connect too (socket 0660, folder 0750; you must be in it)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--max-memory", default=None, metavar="SPEC")
    p.add_argument("--log", default=None, metavar="FILE", help="log file (default: stderr)")
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    _base_arg(p)
    return parser


def _base_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=None, metavar="BASE",
                   help="compare MODEL with this base model (MODEL may be a PEFT LoRA adapter folder): "
                        "diff badges, a diff tab, the behaviour diff")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: Sequence[str] | None = None, explore: Callable[[argparse.Namespace], int] | None = None) -> int:
    """Run the command line. `explore` opens the explorer for the `explore` command (the default): the
    composition root (`llm_internals.main`) passes it, so the engine itself never imports the UI."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list = ["explore", *args_list]
    parser = build_parser()
    args = parser.parse_args(args_list)
    _quiet_libraries()
    try:
        _apply_demo(args)
        return _dispatch(args, explore)
    except UserError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0


def _apply_demo(args: argparse.Namespace) -> None:
    """`--demo moe` stands for the MoE demo model's folder as MODEL (`--demo dense` for the default one)."""
    kind = getattr(args, "demo", None)
    if kind is None:
        return
    if args.model:
        raise UserError(f"pass either MODEL ({args.model}) or --demo {kind}, not both")
    if kind == "dense":
        return  # MODEL omitted already means the dense demo model
    from internals.demo_path import DEMO_TRAINERS, demo_path

    path = demo_path(kind)
    if not (path / "model.safetensors").is_file():
        raise UserError(f"the {kind} demo model is not in {path} yet: train it with "
                        f"`python -m {DEMO_TRAINERS[kind]} --out {path}` or pass a MODEL")
    args.model = str(path)


def _dispatch(args: argparse.Namespace, explore: Callable[[argparse.Namespace], int] | None = None) -> int:
    from internals.cli import commands

    if args.command == "explore":
        if explore is None:
            raise UserError("the explorer opens through the llm-internals command (or `python -m llm_internals`); "
                            "`python -m internals.cli` runs the other commands")
        return explore(args) or 0
    return commands.handler(args.command)(args) or 0


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj))  # one C-encoder pass: json.dump writes thousands of small chunks
    sys.stdout.write("\n")
    sys.stdout.flush()
