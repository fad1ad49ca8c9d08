"""The `chat_template` operation: the open model's chat template rendered for a conversation, with its tokens.

The worker owns the model folder, so the explorer asks it (the UI never reads model files itself). The work is
`internals.inference.chat_template.render_chat_template` (torch-free); a model without a template answers a
`UserError` that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from internals.errors import UserError
from internals.inference.chat_template import ChatRendering, render_chat_template
from internals.worker.operations import OpContext, operation

#: The conversation rendered when the request gives none: a system line, a user turn, an answer, a user turn.
DEFAULT_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3 + 3?"},
]


@dataclass(frozen=True)
class ChatTemplateRequest:
    messages: list[dict[str, Any]] = field(default_factory=lambda: [dict(m) for m in DEFAULT_MESSAGES])
    add_generation_prompt: bool = True


def model_folder(source: Any) -> Path:
    """The folder that holds the model's tokenizer files (the tokenizer folder, else the model's own folder)."""
    folder = source.tokenizer_dir or source.path
    folder = Path(folder)
    return folder if folder.is_dir() else folder.parent


@operation("chat_template", request=ChatTemplateRequest, result=ChatRendering, group="chat-template")
def chat_template(ctx: OpContext, req: ChatTemplateRequest) -> ChatRendering:
    """The model's chat template rendered for `messages`, split into tokens (id, piece, special), with the
    config's BOS id next to the tokenizer's."""
    if not req.messages:
        raise UserError("give at least one message ({\"role\": ..., \"content\": ...})")
    return render_chat_template(model_folder(ctx.opened.source), req.messages, req.add_generation_prompt)
