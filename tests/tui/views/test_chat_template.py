"""The chat-template view alone with a fake data source: tokens with special ones marked, the two BOS ids, the
message for a model without a template, and the export data."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from tui.views.chat_template import ChatTemplateView
from views.harness import ViewApp, screen_text, settle

pytestmark = pytest.mark.anyio

RENDERING = {
    "text": "<s><|user|>hi<|end|><|assistant|>",
    "tokens": [
        {"id": 1, "piece": "<s>", "text": "<s>", "special": True, "added": True},
        {"id": 7, "piece": "<|user|>", "text": "<|user|>", "special": True, "added": True},
        {"id": 300, "piece": "hi", "text": "hi", "special": False, "added": False},
        {"id": 8, "piece": "<|end|>", "text": "<|end|>", "special": True, "added": True},
        {"id": 9, "piece": "<|assistant|>", "text": "<|assistant|>", "special": True, "added": True},
    ],
    "template_source": "tokenizer_config.json", "tokenizer_bos_token": "<s>", "tokenizer_bos_id": 1,
    "config_bos_token_id": 0, "config_bos_piece": "<unk>", "bos_ids_agree": False,
}


class ChatSource:
    def __init__(self, answer):
        self.answer = answer
        self.calls = 0

    def chat_template(self, messages=None, add_generation_prompt=True):
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_tokens_special_ones_and_the_two_bos_ids():
    source = ChatSource(RENDERING)
    app = ViewApp(ChatTemplateView(data_source=source))
    async with app.activated(size=(120, 40)) as pilot:
        table = app.view.query_one(DataTable)
        assert table.row_count == 5 and app.view.focus_target() is table
        assert table.get_row_at(1)[1] == "7" and str(table.get_row_at(1)[4]) == "special"
        text = screen_text(app)
        assert "5 tokens, 4 special" in text and "bos_token_id 0" in text and "DIFFER" in text
        app.view.activate()  # asked once
        await settle(app, pilot)
        assert source.calls == 1 and app.view.export_data() is RENDERING


async def test_a_model_without_a_template_says_so(source):
    app = ViewApp(ChatTemplateView(data_source=source))
    async with app.activated(size=(120, 40)):
        shown = str(app.view.message_widget().render())
        assert "it is a base model" in shown and app.view.message_widget().display
        assert not app.view.query_one(DataTable).display  # no empty table under the message
        assert "no chat template" in app.view.export_data()["error"]
