"""Resolve what the user typed as MODEL into local files.

MODEL may be a Hugging Face hub id (read from the local Hugging Face cache, fetched only when the hub is
reachable), a local folder, a single `.safetensors` file, a bare `config.json`, or nothing (the demo model
that ships with llm-internals). Resolution never writes anything into the user's folders.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from internals.errors import ModelSourceError

SourceKind = Literal["demo", "hub", "folder", "safetensors", "config"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "model.pt", "pytorch_model.bin.index.json")
# What a model needs from the hub: never the pickle checkpoints.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja"]


@dataclass
class ModelSource:
    """A model located on local disk: where its config, weights and tokenizer are."""

    kind: SourceKind
    spec: str  # what the user typed ("" for the demo model)
    path: Path  # the folder or file read
    config_path: Path | None = None
    weight_files: list[Path] = field(default_factory=list)
    pickle_files: list[Path] = field(default_factory=list)
    tokenizer_dir: Path | None = None
    revision: str | None = None

    @property
    def has_weights(self) -> bool:
        return bool(self.weight_files or self.pickle_files)

    @property
    def display_name(self) -> str:
        if self.kind == "demo":
            return "llm-internals demo model"
        return self.spec or str(self.path)


def resolve_source(spec: str | None, revision: str | None = None) -> ModelSource:
    """Turn MODEL (or None for the demo model) into a `ModelSource`, or raise `ModelSourceError`."""
    if not spec:
        from internals.demo_path import demo_model_path

        path = demo_model_path()
        if not (path / "model.safetensors").is_file():
            raise ModelSourceError(
                f"the bundled demo model is not in {path} yet: train it with `python -m internals.demo_model_training.train "
                f"--out {path}` (about 25 minutes on 2 CPU cores) or pass a MODEL"
            )
        src = _from_folder(path, spec="")
        src.kind = "demo"
        return src
    expanded = Path(os.path.expanduser(spec))
    if expanded.exists():
        if revision:
            raise ModelSourceError("--revision applies to hub ids only, not to local paths")
        return _from_local(expanded.resolve(), spec)
    looks_like_path = spec.startswith((".", "/", "~")) or spec.endswith((".json", ".safetensors", ".bin", ".pt"))
    if looks_like_path or not _HUB_ID.match(spec):
        raise ModelSourceError(
            f"no such file or folder: {spec} (give a local folder, a .safetensors file, a config.json or a hub id like org/name)"
        )
    return _from_hub(spec, revision)


def _from_local(path: Path, spec: str) -> ModelSource:
    if path.is_dir():
        return _from_folder(path, spec)
    if path.suffix == ".safetensors":
        return ModelSource(kind="safetensors", spec=spec, path=path, weight_files=[path])
    if path.suffix == ".json":
        if path.name == "model.safetensors.index.json":
            return _from_folder(path.parent, spec)
        _check_config(path)
        return ModelSource(kind="config", spec=spec, path=path, config_path=path)
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        return ModelSource(kind="folder", spec=spec, path=path.parent, pickle_files=[path],
                           config_path=_optional(path.parent / "config.json"))
    raise ModelSourceError(f"{spec} is not a model folder, .safetensors file or config.json")


def _from_folder(folder: Path, spec: str) -> ModelSource:
    config = folder / "config.json"
    weights = _weight_files(folder)
    pickles = [folder / n for n in _PICKLE_NAMES[:3] if (folder / n).is_file()]
    pickles += sorted(p for p in folder.glob("pytorch_model-*.bin"))
    if not config.is_file() and not weights:
        raise ModelSourceError(f"{folder} has neither config.json nor .safetensors files: is it a model folder?")
    if config.is_file():
        _check_config(config)
    tokenizer_dir = (
        folder if any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")) else None
    )
    return ModelSource(kind="folder", spec=spec, path=folder, config_path=config if config.is_file() else None,
                       weight_files=weights, pickle_files=[] if weights else pickles, tokenizer_dir=tokenizer_dir)


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ModelSourceError(f"{index} is not a valid safetensors index (no weight_map): re-download it") from None
        files = sorted({folder / f for f in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelSourceError(
                f"{folder} is missing shard {missing[0]} named in model.safetensors.index.json: download every shard"
            )
        return files
    return sorted(folder.glob("*.safetensors"))


def _check_config(path: Path) -> None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        raise ModelSourceError(f"{path} is not valid JSON: fix or re-download it") from None
    if not isinstance(data, dict) or "model_type" not in data and "architectures" not in data:
        raise ModelSourceError(f"{path} is not a transformers config (no model_type or architectures)")


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def _from_hub(repo_id: str, revision: str | None) -> ModelSource:
    """Find a hub model in the local cache; download only when the hub is reachable."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        raise ModelSourceError("huggingface_hub is not installed: pip install huggingface_hub") from None
    try:
        folder = snapshot_download(repo_id, revision=revision, local_files_only=True, allow_patterns=_HUB_PATTERNS)
    except (LocalEntryNotFoundError, OSError, ValueError):
        folder = None
    if folder is None and os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
        try:
            folder = snapshot_download(repo_id, revision=revision, allow_patterns=_HUB_PATTERNS)
        except Exception as exc:  # noqa: BLE001 - any hub failure means: not available here
            if type(exc).__name__ in ("RepositoryNotFoundError", "RevisionNotFoundError", "GatedRepoError"):
                raise ModelSourceError(
                    f"{repo_id}{'@' + revision if revision else ''} was not found on the Hugging Face hub "
                    "(or needs `hf auth login`)"
                ) from None
            folder = None
    if folder is None:
        rev = f" --revision {revision}" if revision else ""
        raise ModelSourceError(
            f"{repo_id} is not in the local Hugging Face cache and the hub is unreachable: on a machine with network "
            f"run `hf download {repo_id}{rev}` (and copy ~/.cache/huggingface here) or pass a local folder"
        )
    src = _from_folder(Path(folder), repo_id)
    src.kind = "hub"
    src.revision = revision
    return src
