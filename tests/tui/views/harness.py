"""Each view mounted alone (the harness of tests/tui/views): a tiny host app, a fake data source that answers with what the
shipped demo model's worker answered (recorded by record_demo_data.py), and a record of the messages the view posts."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from textual import on
from textual.app import App, ComposeResult
from textual.message import Message
from textual.pilot import Pilot
from textual.widget import Widget

from tui.messages import CloseLessons, FollowLink, OpenNode, Progress, SpectraComputed, WorkerFailed

RECORDED = Path(__file__).resolve().parent / "recorded" / "demo.json.gz"
#: The shipped MoE demo's answers (record_moe_data.py): `FakeSource("moe")`.
RECORDED_MOE = RECORDED.with_name("moe.json.gz")
#: The activations, patching and attribution answers (recorded apart, so each recording stays small).
RECORDED_CAUSES = RECORDED.with_name("causes.json.gz")
RECORDED_SPECTRA = RECORDED.with_name("spectra.json.gz")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


_RECORDS: dict[str, dict[str, Any]] = {}


def recorded(which: str = "demo") -> dict[str, Any]:
    """A demo model's recorded answers, "demo" (with the activations, patching, attribution and spectra answers) or "moe"
    (decoded once per session; callers must not change them)."""
    if which not in _RECORDS:
        if which == "demo":
            with gzip.open(RECORDED, "rt", encoding="utf-8") as fh:
                record = _decode(json.load(fh))
            for extra in (RECORDED_CAUSES, RECORDED_SPECTRA):
                with gzip.open(extra, "rt", encoding="utf-8") as fh:
                    record.update(_decode(json.load(fh)))
        else:
            with gzip.open(RECORDED_MOE, "rt", encoding="utf-8") as fh:
                record = _decode(json.load(fh))
        _RECORDS[which] = record
    return _RECORDS[which]


class FakeSource:
    """A `DataSource` that answers from the recording: what was recorded comes back, anything else raises
    like the worker does (a `KeyError` naming the request). Records every call; `on_progress` is called
    once per request that takes it; `crash` makes every request raise `WorkerCrashed`; `gate` (an Event)
    holds requests until set."""

    def __init__(self, which: str = "demo") -> None:
        self.data = recorded(which)
        self.calls: list[tuple[str, tuple, dict]] = []
        self.crash = False
        self.gate: threading.Event | None = None

    def _answer(self, method: str, key: Any, *args: Any, on_progress=None, **kwargs: Any) -> Any:
        self.calls.append((method, args, kwargs))
        if self.gate is not None:
            self.gate.wait(10)
        if self.crash:
            from internals.worker.client import WorkerCrashed

            raise WorkerCrashed("the worker crashed (exit status -9)")
        if on_progress is not None:
            on_progress(0.5, f"{method} half way")
        table = self.data[method]
        return table if key is None else table[key]

    def status(self) -> dict[str, Any]:
        return {"model": "demo", "pid": 1, "loaded": True, "device": "cpu", "dtype": "float32", "rss_bytes": 2**30}

    def summary(self) -> dict[str, Any]:
        return self._answer("summary", None)

    def tree(self) -> list[dict[str, Any]]:
        return self._answer("tree", None)

    def tensor_stats(self, name: str, bins: int = 64, clip: bool = False) -> dict[str, Any]:
        return self._answer("tensor_stats", name, name, bins=bins, clip=clip)

    def matrix_preview(self, name: str, rows: int = 64, cols: int = 128) -> dict[str, Any]:
        return self._answer("matrix_preview", name, name, rows=rows, cols=cols)

    def cross_layer(self, on_progress=None) -> dict[str, Any]:
        return self._answer("cross_layer", None, on_progress=on_progress)

    def spectrum(self, name: str, on_progress=None) -> dict[str, Any]:
        return self._answer("spectrum", name, name, on_progress=on_progress)

    def spectra(self, on_progress=None) -> dict[str, Any]:
        return self._answer("spectra", None, on_progress=on_progress)

    def tokenize(self, text: str, on_progress=None) -> dict[str, Any]:
        return self._answer("tokenize", text, text, on_progress=on_progress)

    def attention(self, prompt: str, layer: int, bins: int | None = None, on_progress=None) -> dict[str, Any]:
        return self._answer("attention", str(layer), prompt, layer, bins=bins, on_progress=on_progress)

    def lens(self, prompt: str, top_k: int = 5, on_progress=None) -> dict[str, Any]:
        return self._answer("lens", prompt, prompt, top_k=top_k, on_progress=on_progress)

    def neighbours(self, token_id: int, k: int = 10) -> dict[str, Any]:
        return self._answer("neighbours", str(token_id), token_id, k=k)

    def chat_template(self, messages=None, add_generation_prompt: bool = True) -> dict[str, Any]:
        """The demo model has no chat template: the worker answers this UserError (see test_chat_template)."""
        from internals.errors import UserError

        self.calls.append(("chat_template", (), {"messages": messages}))
        raise UserError("demo_model has no chat template (neither chat_template.jinja nor a chat_template in "
                        "tokenizer_config.json): it is a base model, prompt it with plain text")

    def expert_stats(self, name: str, bins: int = 64, on_progress=None) -> dict[str, Any]:
        return self._answer("expert_stats", name, name, bins=bins, on_progress=on_progress)

    def expert_spectra(self, name: str, on_progress=None) -> dict[str, Any]:
        return self._answer("expert_spectra", name, name, on_progress=on_progress)

    def router_summary(self, name: str) -> dict[str, Any]:
        return self._answer("router_summary", name, name)

    def experts(self, prompt: str, on_progress=None) -> dict[str, Any]:
        return self._answer("experts", prompt, prompt, on_progress=on_progress)

    def activations(self, prompt: str, on_progress=None) -> dict[str, Any]:
        return self._answer("activations", prompt, prompt, on_progress=on_progress)

    def patch(self, clean: str, corrupt: str, target: str | None = None, on_progress=None) -> dict[str, Any]:
        return self._answer("patch", f"{clean}|{corrupt}", clean, corrupt, target=target, on_progress=on_progress)

    def attribute(self, prompt: str, target: str | None = None, on_progress=None) -> dict[str, Any]:
        return self._answer("attribute", prompt, prompt, target=target, on_progress=on_progress)

    def lens_tracks(self, prompt: str, tokens: list[str], on_progress=None) -> dict[str, Any]:
        return self._answer("lens_tracks", "|".join([prompt, *tokens]), prompt, tokens, on_progress=on_progress)

    def cancel(self, group: str) -> None:
        self.calls.append(("cancel", (group,), {}))

    # The recorded demo model was opened without --base: the worker refuses every diff question like this.
    def _no_base(self, method: str, *args: Any) -> Any:
        from internals.errors import UserError

        self.calls.append((method, args, {}))
        raise UserError("no base model is open: start the explorer with --base BASE to compare")

    def diff_summary(self, bins: int = 64, on_progress=None) -> dict[str, Any]:
        return self._no_base("diff_summary")

    def diff_tensor(self, name: str, bins: int = 64) -> dict[str, Any]:
        return self._no_base("diff_tensor", name)

    def diff_rank(self, name: str) -> dict[str, Any]:
        return self._no_base("diff_rank", name)

    def diff_behaviour(self, prompt: str, top: int = 10, on_progress=None) -> dict[str, Any]:
        return self._no_base("diff_behaviour", prompt)

    def run_demo(self, name: str, params=None, on_progress=None):
        self.calls.append(("run_demo", (name,), {"params": params}))
        if on_progress is not None:
            on_progress(0.25, "training")
        for step in range(4):
            yield {"series": "loss", "x": step, "y": 2.0 / (step + 1)}
        yield {"result": {"counts": {"trainable": 1234, "total": 5678}, "final_loss": 0.5}}


class ViewApp(App[None]):
    """Hosts one view and records the app-level messages it posts (what `ExplorerApp` would handle)."""

    CSS = "Screen { layout: vertical; }"

    def __init__(self, view: Widget) -> None:
        super().__init__()
        self.view = view
        self.posted: list[Message] = []

    def compose(self) -> ComposeResult:
        yield self.view

    @on(OpenNode)
    @on(FollowLink)
    @on(Progress)
    @on(WorkerFailed)
    @on(CloseLessons)
    @on(SpectraComputed)
    def _record(self, message: Message) -> None:
        """The app-level messages a view posts, in order."""
        self.posted.append(message)

    def of(self, kind: type[Message]) -> list[Message]:
        return [m for m in self.posted if isinstance(m, kind)]

    @asynccontextmanager
    async def activated(self, size: tuple[int, int] = (120, 40)) -> AsyncIterator[Pilot]:
        """`async with app.activated() as pilot:` — run the app, activate the view (its first request) and
        wait until the answer is drawn: the start of every view test."""
        async with self.run_test(size=size) as pilot:
            self.view.activate()  # type: ignore[attr-defined]
            await settle(self, pilot)
            yield pilot


async def settle(app: App, pilot) -> None:
    """Let thread workers finish and their messages be handled."""
    for _ in range(2):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


def screen_text(app: App) -> str:
    """What the screen shows, as text (the exported SVG without markup; a run of one style stays whole)."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", app.export_screenshot())).replace("\xa0", " ")
