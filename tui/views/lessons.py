"""The lessons pane: markdown lessons with numbers from the open model, links that move the explorer,
and demos that run in the worker with a live plot."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Markdown, OptionList, Static
from textual.widgets.option_list import Option

from tui.components.lineplot import LinePlot
from tui.data_source import DataSource, NoDataSource
from tui.messages import CloseLessons, FollowLink
from tui.css import widget_css


def result_summary(result: dict[str, Any], limit: int = 12) -> str:
    """The demo's headline numbers: its scalar results and those one level down (e.g. counts.trainable)."""
    lines = []
    for key, value in result.items():
        if key in ("params", "demo"):
            continue
        if isinstance(value, (int, float, str, bool)) and len(str(value)) < 60:
            lines.append(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float, bool)):
                    lines.append(f"{key}.{sub}: {v:.4g}" if isinstance(v, float) else f"{key}.{sub}: {v}")
    saved = result.get("saved") or (result.get("finetune") or {}).get("saved")
    if isinstance(saved, dict) and saved.get("command"):  # a training demo saved what it trained
        lines = lines[:limit] + [f"saved {saved.get('kind', '')}: {saved.get('path')}",
                                 f"what did training change? {saved['command']}"]
        return "demo finished\n" + "\n".join(lines)
    return "demo finished\n" + "\n".join(lines[:limit])


class LessonsPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "run_demo", "Run demo", id="lessons.demo"),
        Binding("escape", "close", "Close lessons", show=False, id="lessons.close"),
    ]
    DEFAULT_CSS = widget_css(__file__)

    class DemoStatus(Message, bubble=False):
        """A line about the running demo (progress, failure), from its thread worker."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class DemoItem(Message, bubble=False):
        """One streamed item of the demo: a point (`series`, `x`, `y`), a `message` or the `result`."""

        def __init__(self, item: dict[str, Any]) -> None:
            super().__init__()
            self.item = item

    def __init__(self, data_source: DataSource | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_source: DataSource = data_source if data_source is not None else NoDataSource()
        self.facts: dict[str, Any] = {}
        self.current: str | None = None
        self.points: dict[str, list[tuple[float, float]]] = {}
        self.demo_params: dict[str, Any] = {}  # overrides of the demo's defaults (tests use its quick mode)

    def compose(self):
        yield OptionList(id="lesson-list")
        yield Markdown("Pick a lesson.", id="lesson-body", open_links=False)
        yield Static("", id="demo-status")
        yield LinePlot(title="demo", id="demo-plot")

    def on_mount(self) -> None:
        from lessons.catalog import load_lessons

        lst = self.query_one("#lesson-list", OptionList)
        for lesson in load_lessons():
            part = {"architecture": "A", "training": "T", "inference": "I"}.get(lesson.part, "?")
            lst.add_option(Option(f"{part}{lesson.order:02d} {lesson.title}", id=lesson.id))

    def set_model(self, summary: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
        """The open model (the app calls this when the model is read, and before mounting a late pane)."""
        from lessons.facts import lesson_facts

        self.facts = lesson_facts(summary, nodes)
        if self.current:
            self.open(self.current)

    def focus_list(self) -> None:
        self.query_one("#lesson-list", OptionList).focus()

    @on(OptionList.OptionSelected, "#lesson-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.open(str(event.option.id))

    def open(self, lesson_id: str) -> None:
        from lessons.catalog import get_lesson, render_lesson

        try:
            lesson = get_lesson(lesson_id)
        except Exception as exc:  # noqa: BLE001
            self.notify(str(exc), severity="error")
            return
        self.current = lesson_id
        text = render_lesson(lesson, self.facts, strict=False)
        if lesson.demo:
            text += f"\n\n---\n**Demo:** press `d` to run `{lesson.demo}` on the open model."
        self.query_one("#lesson-body", Markdown).update(text)
        self.query_one("#demo-status", Static).update("")

    @on(Markdown.LinkClicked)
    def _link(self, event: Markdown.LinkClicked) -> None:
        event.stop()
        if event.href.startswith("llm:"):
            self.post_message(FollowLink(event.href))
        else:
            self.notify(f"external link (open it in a browser): {event.href}")

    def action_close(self) -> None:
        self.post_message(CloseLessons())

    def action_run_demo(self) -> None:
        from lessons.catalog import get_lesson

        if not self.current:
            return
        demo = get_lesson(self.current).demo
        if not demo:
            self.notify("this lesson has no demo")
            return
        self.points = {}
        plot = self.query_one("#demo-plot", LinePlot)
        plot.display = True
        self.query_one("#demo-status", Static).update(f"running demo {demo!r} in the worker…")
        self._run(demo)

    @work(thread=True, exclusive=True, group="demo", exit_on_error=False)
    def _run(self, demo: str) -> None:
        def progress(fraction: float, message: str) -> None:
            self.post_message(self.DemoStatus(f"{message} {100 * fraction:.0f}%"))

        try:
            for item in self.data_source.run_demo(demo, dict(self.demo_params), on_progress=progress):
                self.post_message(self.DemoItem(item))
        except Exception as exc:  # noqa: BLE001 - shown in the pane
            self.post_message(self.DemoStatus(f"demo failed: {exc}"))

    @on(DemoStatus)
    def _demo_status(self, message: DemoStatus) -> None:
        self._status(message.text)

    def _status(self, text: str) -> None:
        self.query_one("#demo-status", Static).update(text)

    @on(DemoItem)
    def _point(self, message: DemoItem) -> None:
        item = message.item
        if "series" in item and "y" in item:
            self.points.setdefault(str(item["series"]), []).append((float(item.get("x", 0)), float(item["y"])))
            series = {k: np.array([p[1] for p in v]) for k, v in self.points.items()}
            longest = max(len(v) for v in series.values())
            padded = {k: np.concatenate([v, np.full(longest - len(v), np.nan)]) for k, v in series.items()}
            self.query_one("#demo-plot", LinePlot).set_series(padded, title="live")
        elif "result" in item:
            self._status(result_summary(item["result"]))
        elif "message" in item:
            self._status(str(item["message"]))
