"""Tokens as a reader sees them: ids, the text each one adds, and a readable label for each on its own.

A byte-level BPE token can hold part of a UTF-8 character (é is two byte tokens in many vocabularies), so
"the text of one token" has two honest answers, and the views need both:
- `pieces`: what each token adds to the decoded text. They join back to exactly the decoded text; a character
  split over several tokens appears on the token that completes it, and the tokens before it add "".
- `labels`: the token on its own, for boxes and top-k lists. Whole characters as text, a partial UTF-8
  sequence as escaped bytes ("\\xc3"), special tokens as their name ("<|endoftext|>").
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from internals.errors import UserError

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # SentencePiece byte fallback
_REPLACEMENT = "\ufffd"


def tokenize(tokenizer: Any, text: str) -> dict[str, Any]:
    """Tokenize a prompt the way the model will see it (with the tokenizer's special tokens, e.g. BOS).

    Returns ids, pieces, labels, partial (token holds an incomplete UTF-8 sequence), special, offsets
    ([start, end] character spans in `text`, null for a slow tokenizer) and the text.
    """
    if not text:
        raise UserError("the prompt is empty: type some text to tokenize")
    fast = bool(getattr(tokenizer, "is_fast", False))
    encoding = tokenizer(text, add_special_tokens=True, return_offsets_mapping=fast)
    ids = [int(i) for i in encoding["input_ids"]]
    if not ids:
        raise UserError("the prompt is empty: the tokenizer produced no tokens for it")
    pieces, partial = decode_pieces(tokenizer, ids)
    specials = special_ids(tokenizer)
    labels = [token_label(tokenizer, i) if partial[n] or i in specials else pieces[n] for n, i in enumerate(ids)]
    offsets = [[int(s), int(e)] for s, e in encoding["offset_mapping"]] if fast else None
    return dict(ids=ids, pieces=pieces, labels=labels, partial=partial, special=[i in specials for i in ids],
                offsets=offsets, text=text)


def single_token_id(tokenizer: Any, text: str, what: str = "target") -> int:
    """The id of the one token `text` is (without special tokens), for the analyses that follow one token
    (`--target`, `--track`); a text of several tokens, or none, is a `BadRequest` that names its tokens."""
    from internals.errors import BadRequest

    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]] if text else []
    if len(ids) != 1:
        pieces = [token_label(tokenizer, i) for i in ids]
        raise BadRequest(f"the {what} {text!r} must be exactly one token, but the tokenizer makes "
                         f"{len(ids)} of it: {pieces}; pass one of them (a leading space is often part of a token)")
    return ids[0]


def decode_pieces(tokenizer: Any, ids: Sequence[int]) -> tuple[list[str], list[bool]]:
    """Split the decoded text over the tokens (see the module docstring) in O(T) decodes.

    Each token is decoded with the previous emitted chunk as left context, so that decoders that drop or add
    a leading space (SentencePiece) and multi-byte characters come out as in a full decode.
    Returns (pieces, partial).
    """
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(i) for i in ids]
    tail = decoder.flush()
    if tail:
        pieces[-1] += tail
    partial = [decoder.held[n] or (n > 0 and decoder.held[n - 1]) for n in range(len(ids))]
    return pieces, partial


class IncrementalDecoder:
    """Turns a stream of token ids into text deltas that never cut a UTF-8 character (used for streaming too).

    `push(id)` returns the text the token completes ("" while a character is still incomplete); the deltas
    join to `tokenizer.decode(all ids)` once `flush()`'s remainder is added.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # ids before this index have been emitted
        self.held: list[bool] = []  # per pushed id: its text was held back (incomplete character)

    def push(self, token_id: int) -> str:
        self._ids.append(int(token_id))
        before = self._decode(self._ids[self._prefix:self._read])
        after = self._decode(self._ids[self._prefix:])
        if after.endswith(_REPLACEMENT) or not after.startswith(before):
            self.held.append(True)
            return ""
        self.held.append(False)
        self._prefix = self._read  # the chunk just emitted is the next token's left context
        self._read = len(self._ids)
        return after[len(before):]

    def flush(self) -> str:
        """Text still held back at the end of the stream (a dangling partial character, as U+FFFD)."""
        if self._read == len(self._ids):
            return ""
        before = self._decode(self._ids[self._prefix:self._read])
        after = self._decode(self._ids[self._prefix:])
        self._read = len(self._ids)
        return after[_common_prefix(before, after):]

    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self._tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def token_label(tokenizer: Any, token_id: int) -> str:
    """A readable label for one token on its own: text, escaped bytes for a partial character, or its name."""
    token_id = int(token_id)
    token = _token_string(tokenizer, token_id)
    if token is None:
        return f"<id {token_id}>"
    if token_id in special_ids(tokenizer):
        return token
    raw = token_bytes(tokenizer, token_id)
    if raw is not None:
        return raw.decode("utf-8", errors="backslashreplace")
    return tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def token_labels(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [token_label(tokenizer, i) for i in ids]


def token_bytes(tokenizer: Any, token_id: int) -> bytes | None:
    """The exact bytes a token stands for, when the tokenizer's decoder makes that knowable.

    Byte-level BPE (GPT-2, Llama 3, Qwen): each character of the token string is one byte. SentencePiece:
    `<0xNN>` byte-fallback tokens and "▁" for a space. Other decoders: None.
    """
    token = _token_string(tokenizer, token_id)
    if token is None:
        return None
    kinds = _decoder_kinds(tokenizer)
    if "ByteLevel" in kinds:
        table = _unicode_to_byte()
        if all(ch in table for ch in token):
            return bytes(table[ch] for ch in token)
        return None
    match = _BYTE_TOKEN.match(token)
    if match and ("ByteFallback" in kinds or "Metaspace" in kinds or not kinds):
        return bytes([int(match.group(1), 16)])
    if "Metaspace" in kinds or ("Replace" in kinds and "\u2581" in token):
        return token.replace("\u2581", " ").encode("utf-8")
    return None


def special_ids(tokenizer: Any) -> frozenset[int]:
    return frozenset(int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None)


def _token_string(tokenizer: Any, token_id: int) -> str | None:
    try:
        token = tokenizer.convert_ids_to_tokens(int(token_id))
    except (IndexError, KeyError, OverflowError, TypeError, ValueError):
        return None
    return token if isinstance(token, str) else None


def _decoder_kinds(tokenizer: Any) -> frozenset[str]:
    """The `type`s in the fast tokenizer's decoder pipeline (e.g. {"ByteLevel"} or {"Replace", "ByteFallback"})."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is None:
        return frozenset()
    try:
        state = decoder.__getstate__()
    except (AttributeError, TypeError, ValueError):
        return frozenset()
    return _kinds_of_json(state.decode("utf-8") if isinstance(state, bytes) else str(state))


@lru_cache(maxsize=16)
def _kinds_of_json(serialized: str) -> frozenset[str]:
    decoder = json.loads(serialized) or {}
    kinds: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("type"), str):
                kinds.add(node["type"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(decoder)
    return frozenset(kinds)


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable stand-in character of each byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, codes)}
