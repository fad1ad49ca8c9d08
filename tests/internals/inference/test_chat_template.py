"""The chat-template renderer: same ids as transformers' apply_chat_template, special and added tokens flagged,
the config's BOS id against the tokenizer's, a clear error for a model without a template; torch-free."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from internals.demo_path import demo_model_path
from internals.errors import UserError
from internals.inference.chat_template import render_chat_template

#: An R1-Distill-like template (its markers, the BOS it writes, a generation prompt that opens <think>).
TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<｜User｜>{{ m['content'] }}"
            "{% elif m['role'] == 'assistant' %}<｜Assistant｜>{{ m['content'] }}<|endoftext|>{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}")
MESSAGES = [{"role": "user", "content": "def add(a, b):"}, {"role": "assistant", "content": "return a + b"},
            {"role": "user", "content": "and sub?"}]


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory):
    """The demo model's tokenizer with R1-style special tokens, a chat template, and a config whose bos_token_id
    (0, <|endoftext|>) differs from the tokenizer's BOS, as in DeepSeek-R1-Distill-Qwen."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("chat-model")
    tok = AutoTokenizer.from_pretrained(demo_model_path())
    tok.add_special_tokens({"bos_token": "<｜begin▁of▁sentence｜>",
                            "additional_special_tokens": ["<｜User｜>", "<｜Assistant｜>"]})
    tok.add_tokens(["<think>", "</think>"])
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    shutil.copy(demo_model_path() / "config.json", folder / "config.json")
    return folder


def test_ids_equal_transformers_apply_chat_template(chat_folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_folder)
    for generation_prompt in (True, False):
        got = render_chat_template(chat_folder, MESSAGES, add_generation_prompt=generation_prompt)
        expected = tok.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=generation_prompt,
                                           return_dict=False)
        assert [t["id"] for t in got["tokens"]] == list(expected)
        assert got["text"] == tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=generation_prompt)
    assert got["text"].startswith("<｜begin▁of▁sentence｜><｜User｜>def add(a, b):")


def test_special_and_added_tokens_and_the_two_bos_ids(chat_folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_folder)
    got = render_chat_template(chat_folder, MESSAGES)
    by_piece = {t["piece"]: t for t in got["tokens"]}
    for marker in ("<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<|endoftext|>"):
        assert by_piece[marker]["special"] and by_piece[marker]["id"] == tok.convert_tokens_to_ids(marker)
    assert by_piece["<think>"]["added"] and not by_piece["<think>"]["special"]
    assert [t["piece"] for t in got["tokens"][-3:]][:2] == ["<｜Assistant｜>", "<think>"]
    # the flags agree with transformers' list of special ids: BOS, two <｜User｜>, two <｜Assistant｜>, one EOS
    assert [t["special"] for t in got["tokens"]] == [t["id"] in tok.all_special_ids for t in got["tokens"]]
    assert sum(t["special"] for t in got["tokens"]) == 6
    assert "".join(t["text"] for t in got["tokens"]) == got["text"]
    assert got["tokenizer_bos_token"] == "<｜begin▁of▁sentence｜>" and got["tokenizer_bos_id"] == tok.bos_token_id
    assert got["config_bos_token_id"] == 0 and got["config_bos_piece"] == "<|endoftext|>"
    assert got["bos_ids_agree"] is False


def test_template_in_tokenizer_config_json(chat_folder, tmp_path):
    folder = tmp_path / "in-config"
    shutil.copytree(chat_folder, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    got = render_chat_template(folder, MESSAGES[:1])
    assert got["template_source"] == "tokenizer_config.json" and got["text"].endswith("<think>\n")


def test_model_without_a_template_and_bad_messages(chat_folder):
    with pytest.raises(UserError, match="has no chat template.*base model"):
        render_chat_template(demo_model_path(), MESSAGES)
    with pytest.raises(UserError, match="role"):
        render_chat_template(chat_folder, [{"text": "hi"}])


def test_imports_neither_torch_nor_transformers(chat_folder):
    code = ("import sys; from internals.inference.chat_template import render_chat_template as r; "
            f"r({str(chat_folder)!r}, [{{'role': 'user', 'content': 'hi'}}]); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_worker_operation_renders_the_open_models_template(chat_folder, tmp_path):
    """The `chat_template` operation through the in-process client (same codec as the socket): the ids of the
    model folder the worker owns equal transformers' apply_chat_template; the demo model (no template) answers
    a UserError that says it is a base model."""
    from transformers import AutoTokenizer

    from internals.model import open_model
    from internals.worker.client import InProcessClient
    from internals.worker.service import ModelService

    folder = tmp_path / "chat-model"
    shutil.copytree(chat_folder, folder)
    (folder / "model.safetensors").symlink_to(demo_model_path() / "model.safetensors")
    client = InProcessClient(ModelService(open_model(str(folder))))
    try:
        got = client.chat_template(MESSAGES, add_generation_prompt=True)
        expected = AutoTokenizer.from_pretrained(folder).apply_chat_template(
            MESSAGES, tokenize=True, add_generation_prompt=True, return_dict=False)
        assert [t["id"] for t in got["tokens"]] == list(expected) and got["bos_ids_agree"] is False
        assert client.chat_template()["tokens"], "the default conversation renders too"
    finally:
        client.close()
    demo = InProcessClient(ModelService(open_model(str(demo_model_path()))))
    try:
        with pytest.raises(UserError, match="no chat template.*base model"):
            demo.chat_template()
    finally:
        demo.close()
