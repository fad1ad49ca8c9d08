"""The training corpus: Python standard library sources, split deterministically into train and held-out
files, and the byte-level BPE tokenizer trained on the train files.

Every machine with Python has these files, so no network is needed. The list depends on the Python version
(the card records which one was used).
"""

from __future__ import annotations

import hashlib
import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Directory names skipped anywhere in a path: tests, installed packages, byte code; `encodings` (mostly
# generated codec tables) and `pydoc_data` (one huge string literal) are not representative code.
EXCLUDED_DIRS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "encodings",
        "pydoc_data",
    }
)
HELDOUT_MODULUS = 10  # a file is held out when sha256(relative path) % 10 == 0 (about 10% of files)
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS = [ENDOFTEXT]


@dataclass(frozen=True)
class SourceFile:
    relpath: str  # posix path relative to the stdlib directory
    path: Path

    def read(self) -> str:
        return self.path.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[SourceFile]:
    """All `.py` files under the stdlib directory, minus EXCLUDED_DIRS, sorted by relative path."""
    root = root or stdlib_dir()
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        if not path.is_file():
            continue
        out.append(SourceFile(rel.as_posix(), path))
    out.sort(key=lambda f: f.relpath)
    return out


def is_heldout(relpath: str) -> bool:
    digest = hashlib.sha256(relpath.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_MODULUS == 0


def split_files(files: list[SourceFile]) -> tuple[list[SourceFile], list[SourceFile]]:
    train = [f for f in files if not is_heldout(f.relpath)]
    heldout = [f for f in files if is_heldout(f.relpath)]
    return train, heldout


def heldout_sample(texts: list[str], n_files: int = 8, chars_per_file: int = 1000) -> str:
    """A few KB of held-out code: from each of the first `n_files` texts, about `chars_per_file` characters
    of whole lines starting at the first line break after the middle of the file."""
    pieces: list[str] = []
    for text in texts:
        if len(pieces) == n_files:
            break
        start = text.find("\n", len(text) // 2)
        if start < 0:
            continue
        chunk = text[start + 1 : start + 1 + chars_per_file]
        end = chunk.rfind("\n")
        if end <= 0:
            continue
        chunk = chunk[: end + 1]
        if len(chunk.strip()) < 200:
            continue
        pieces.append(chunk)
    return "\n".join(pieces)


def train_tokenizer(texts: list[str], vocab_size: int = 4096):
    """A byte-level BPE trained on `texts`, returned as a `Qwen2Tokenizer`.

    The normalizer and pre-tokenizer are taken from transformers' own `Qwen2Tokenizer` (NFC, the Qwen2 split
    regex, byte-level without prefix space): `AutoTokenizer` rebuilds that pipeline for any folder whose
    config says `model_type: qwen2`, so training with it is what makes the saved tokenizer encode exactly as
    it did during training.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    template = Qwen2Tokenizer().backend_tokenizer
    tok = Tokenizer(models.BPE())
    tok.normalizer = template.normalizer
    tok.pre_tokenizer = template.pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    bpe = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in bpe["merges"]]
    return Qwen2Tokenizer(
        vocab=bpe["vocab"],
        merges=merges,  # type: ignore[arg-type]  # transformers' annotation omits the list of pairs it accepts
        unk_token=ENDOFTEXT,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        clean_up_tokenization_spaces=False,
    )
