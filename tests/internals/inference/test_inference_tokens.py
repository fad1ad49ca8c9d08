"""Tokens as text: pieces that join back to the prompt, labels for partial UTF-8, offsets and specials."""

from __future__ import annotations

import pytest
from inference_support import load_tiny

from internals.errors import UserError
from internals.inference.tokens import IncrementalDecoder, token_label, tokenize


@pytest.fixture
def tokenizer(tiny_models):
    return load_tiny(tiny_models, "llama").tokenizer


def test_ascii_pieces_join_back(tokenizer):
    text = "def __init__(self, value):\n    return  None"
    got = tokenize(tokenizer, text)
    assert "".join(got["pieces"]) == text
    assert len(got["ids"]) == len(got["pieces"]) == len(got["labels"]) == len(got["special"]) == len(got["offsets"])
    assert got["labels"] == got["pieces"] and not any(got["partial"])
    for (start, end), piece in zip(got["offsets"], got["pieces"]):
        assert text[start:end].strip() == piece.strip()


def test_utf8_pieces_join_back_and_partial_tokens_are_escaped(tokenizer):
    text = "café 中文"
    got = tokenize(tokenizer, text)
    assert "".join(got["pieces"]) == text
    # é and 中 are split into byte tokens by this tokenizer: the completing token carries the character
    assert "é" in got["pieces"] and "中" in got["pieces"]
    partial = [label for label, p in zip(got["labels"], got["partial"]) if p]
    assert partial and all(label.startswith("\\x") for label in partial)
    assert got["labels"][got["pieces"].index("é") - 1] == "\\xc3"


def test_special_tokens_are_flagged(tokenizer):
    got = tokenize(tokenizer, "a<|endoftext|>b")
    assert got["special"] == [False, True, False]
    assert got["pieces"][1] == got["labels"][1] == "<|endoftext|>"


def test_empty_prompt_is_a_user_error(tokenizer):
    with pytest.raises(UserError, match="the prompt is empty"):
        tokenize(tokenizer, "")


def test_incremental_decoder_never_cuts_a_character(tokenizer):
    ids = tokenizer("x中y", add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    deltas = [decoder.push(i) for i in ids]
    assert deltas == ["x", "", "", "中", "y"] and decoder.flush() == ""
    assert token_label(tokenizer, ids[0]) == "x"
