"""A model's chat template, rendered for a conversation and split into tokens, without torch or transformers.

Chat models are prompted through a Jinja template stored with the tokenizer (`chat_template` in
tokenizer_config.json, or a chat_template.jinja file). `render_chat_template` renders it the way transformers'
`apply_chat_template` does (a sandboxed Jinja environment with trim_blocks and lstrip_blocks, the special tokens
as variables) and encodes the text with the `tokenizers` library without adding special tokens (the template
writes them itself), so the ids equal `apply_chat_template(..., tokenize=True)`. Each token comes with its id,
its piece (the vocabulary entry) and its text, and a flag for the tokenizer's special tokens.

It also reports the BOS id of config.json next to the tokenizer's BOS token: they need not agree (a model's
config can name one id while its tokenizer and template write another).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from internals.errors import UserError

__all__ = ["ChatToken", "ChatRendering", "render_chat_template", "read_chat_template"]


class ChatToken(TypedDict):
    id: int
    piece: str  # the vocabulary entry, e.g. "Ġthe" or "<think>"
    text: str  # what the token decodes to on its own
    special: bool  # one of the tokenizer's special tokens (added with special=True)
    added: bool  # an added token (special or not, e.g. <think> in R1-Distill's tokenizer)


class ChatRendering(TypedDict):
    text: str  # the rendered template
    tokens: list[ChatToken]
    template_source: str  # "tokenizer_config.json" or "chat_template.jinja"
    tokenizer_bos_token: str | None
    tokenizer_bos_id: int | None
    config_bos_token_id: int | None
    config_bos_piece: str | None  # the vocabulary entry of config.json's bos_token_id
    bos_ids_agree: bool | None  # None when either side is unknown


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # {"content": "<｜begin▁of▁sentence｜>", "lstrip": false, ...}
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}; check that the model folder is complete") from None
    return data if isinstance(data, dict) else {}


def read_chat_template(folder: str | Path) -> tuple[str, str]:
    """(template, where it came from); raises UserError when the model has none."""
    folder = Path(folder)
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8"), "chat_template.jinja"
    config = folder / "tokenizer_config.json"
    template = _read_json(config).get("chat_template") if config.is_file() else None
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if isinstance(template, str) and template.strip():
        return template, "tokenizer_config.json"
    raise UserError(f"{folder.name or folder} has no chat template (neither chat_template.jinja nor a chat_template "
                    "in tokenizer_config.json): it is a base model, prompt it with plain text")


def _render(template: str, messages: list[dict[str, Any]], add_generation_prompt: bool,
            variables: dict[str, Any]) -> str:
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise UserError(f"the chat template refused the conversation: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                **variables)
    except TemplateError as exc:
        raise UserError(f"the chat template does not render: {exc}") from None


def render_chat_template(folder: str | Path, messages: list[dict[str, Any]],
                         add_generation_prompt: bool = True) -> ChatRendering:
    """Render the chat template of the model in `folder` for `messages` ([{"role", "content"}, ...]) and split it
    into tokens. Raises UserError when the model has no chat template or no tokenizer.json."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    if not messages or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
        raise UserError("give the conversation as a list of {\"role\": ..., \"content\": ...} messages")
    template, where = read_chat_template(folder)
    if not (folder / "tokenizer.json").is_file():
        raise UserError(f"{folder} has no tokenizer.json: a fast tokenizer is needed to split the template")
    tok_config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    variables = {key: _token_text(tok_config.get(key)) for key in
                 ("bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token")}
    text = _render(template, messages, add_generation_prompt, variables)

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    added = tokenizer.get_added_tokens_decoder()
    special_ids = {i for i, t in added.items() if t.special}
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    tokens: list[ChatToken] = [
        ChatToken(id=int(i), piece=tokenizer.id_to_token(i) or "", text=tokenizer.decode([i], skip_special_tokens=False),
                  special=i in special_ids, added=i in added)
        for i in ids]

    bos = variables["bos_token"]
    bos_id = tokenizer.token_to_id(bos) if bos else None
    config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    config_bos = config.get("bos_token_id")
    config_bos = config_bos if isinstance(config_bos, int) and not isinstance(config_bos, bool) else None
    return ChatRendering(
        text=text, tokens=tokens, template_source=where, tokenizer_bos_token=bos, tokenizer_bos_id=bos_id,
        config_bos_token_id=config_bos,
        config_bos_piece=tokenizer.id_to_token(config_bos) if config_bos is not None else None,
        bos_ids_agree=None if (bos_id is None or config_bos is None) else bos_id == config_bos)
