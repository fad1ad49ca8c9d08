"""Where the training demos save what they trained, and the command that opens it against its base.

A demo parameter `save_to` picks the folder; empty means `<cache root>/demos/<demo>` (internals/cache_paths.py),
replaced on each run. The saved folder is a PEFT adapter (`save_pretrained` of the peft model) or a full
fine-tuned copy (`save_pretrained` of the model plus the base's tokenizer files), so that
`llm-internals <saved> --base <open model>` shows what training changed.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any, TypedDict

from internals.cache_paths import cache_root
from internals.errors import UserError

#: Tokenizer files copied next to a saved full model, so that it opens on its own.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "tokenizer.model", "generation_config.json")


class Saved(TypedDict):
    path: str
    kind: str  # "adapter" | "model" | "student"
    command: str  # opens the saved folder against the open model in the explorer


def save_folder(params: dict[str, Any], demo: str) -> Path:
    """The folder to save into (made empty): `params["save_to"]`, or the cache's `demos/<demo>`."""
    target = str(params.get("save_to") or "").strip()
    folder = Path(target).expanduser() if target else cache_root() / "demos" / demo
    if folder.exists() and not folder.is_dir():
        raise UserError(f"save_to {folder} is a file: give a folder for the demo to save into")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "config.json").is_file() \
            and not (folder / "adapter_config.json").is_file():
        raise UserError(f"save_to {folder} holds other files: give an empty folder or one a demo saved before")
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def open_command(folder: Path, opened: Any, against_base: bool = True) -> str:
    """`llm-internals <saved> --base <open model>` (the open model as the user gave it, else its folder);
    without `against_base` (a student: a new, smaller model, not a copy) just `llm-internals <saved>`."""
    if not against_base:
        return f"llm-internals {shlex.quote(str(folder))}"
    base = opened.source.spec or str(opened.source.path)
    return f"llm-internals {shlex.quote(str(folder))} --base {shlex.quote(base)}"


def save_adapter(peft_model: Any, params: dict[str, Any], demo: str, opened: Any) -> Saved:
    """A peft model's adapter (`adapter_config.json` + `adapter_model.safetensors`)."""
    folder = save_folder(params, demo)
    peft_model.save_pretrained(str(folder))
    return Saved(path=str(folder), kind="adapter", command=open_command(folder, opened))


def save_model(model: Any, params: dict[str, Any], demo: str, opened: Any, student: bool = False) -> Saved:
    """A full fine-tuned copy (safetensors) with the open model's tokenizer files. `student`: a new model
    trained from the open one (distillation): saved the same way, opened on its own (its shapes differ, so
    there is no ΔW against the open model); its tokenizer files are copied only when its vocabulary is the
    open model's."""
    folder = save_folder(params, demo)
    model.save_pretrained(str(folder), safe_serialization=True)
    from lessons.demos._common import model_folder

    source = model_folder(opened)
    same_vocab = getattr(model.config, "vocab_size", None) == getattr(opened.config, "vocab_size", None)
    for name in TOKENIZER_FILES if source is not None and same_vocab else ():
        if (source / name).is_file() and not (folder / name).exists():
            shutil.copy2(source / name, folder / name)
    return Saved(path=str(folder), kind="student" if student else "model",
                 command=open_command(folder, opened, against_base=not student))
