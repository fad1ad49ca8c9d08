"""The lessons pane: markdown lessons with numbers from the open model, links that move the explorer,
predict-then-check exercises answered live from the open model, and demos that run in the worker with a live plot.

Progress (lessons opened and read, exercises attempted and solved) is `lessons.progress`: loaded when the pane is
mounted, saved after every change, shown in the lesson list (✓ every exercise solved, ◐ some, • read to the end
or answered, · opened).
Exercise answers that need only the model card (`needs="facts"`) are computed here; those that need the
weights run in the worker through the lessons' `exercise-answer` demo (`lessons.answer_op`)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.widgets import Input, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from tui.components.lineplot import LinePlot
from tui.css import widget_css
from tui.data_source import DataSource, NoDataSource
from tui.messages import CloseLessons, FollowLink


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


def _plain(question: str) -> str:
    """An exercise question as plain text for a Static (code-span backticks dropped)."""
    return question.replace("`", "")


class ExerciseBox(Vertical):
    """One exercise: its question, where to type (or choose) the prediction, and the verdict after Enter."""

    DEFAULT_CLASSES = "exercise"

    def __init__(self, exercise: Any, question: str, state: dict[str, Any] | None = None) -> None:
        super().__init__(id=f"ex-{exercise.id}")
        self.exercise = exercise
        self.question = question
        self.state = dict(state or {})

    def compose(self):
        ex = self.exercise
        solved = " ✓ solved" if self.state.get("correct") else ""
        attempts = int(self.state.get("attempts") or 0)
        tries = f" ({attempts} attempt{'s' if attempts != 1 else ''})" if attempts else ""
        yield Static(f"[b]▸[/b] {escape(self.question)}  [dim]{ex.id}{solved}{tries}[/dim]", classes="ex-question")
        if ex.kind == "choice":
            yield OptionList(*[Option(c, id=c) for c in ex.choices], classes="ex-choices")
        else:
            hint = {"number": "a number, e.g. 1536", "shape": "a shape, e.g. [256, 1536]"}.get(ex.kind, "your answer")
            yield Input(placeholder=f"{hint}, then Enter", classes="ex-input")
        yield Static("", classes="ex-verdict")

    def guess_widget(self):
        return self.query_one(".ex-choices, .ex-input")

    def show_verdict(self, text: str) -> None:
        self.query_one(".ex-verdict", Static).update(text)


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

    class AnswerReady(Message, bubble=False):
        """The worker's live answer of a "model" exercise (`result`), or why there is none (`error`)."""

        def __init__(self, exercise_id: str, typed: str, result: dict[str, Any] | None, error: str = "") -> None:
            super().__init__()
            self.exercise_id = exercise_id
            self.typed = typed
            self.result = result
            self.error = error

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
        self.nodes: list[dict[str, Any]] = []
        #: Live answers by exercise id, for the open model (cleared when the model changes).
        self.live: dict[str, Any] = {}
        self.progress: Any = None  # lessons.progress.Progress, loaded on mount

    def compose(self):
        yield OptionList(id="lesson-list")
        with VerticalScroll(id="lesson-scroll"):
            yield Markdown("Pick a lesson.", id="lesson-body", open_links=False)
            yield Vertical(id="exercises")
        yield Static("", id="demo-status")
        yield LinePlot(title="demo", id="demo-plot")

    def on_mount(self) -> None:
        import warnings

        from lessons.progress import Progress, load_progress

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.progress = load_progress()
            except Exception as exc:  # noqa: BLE001 - progress is a convenience; the lessons still open
                self.progress = Progress()
                self.notify(f"lesson progress not loaded: {exc}", severity="warning")
        for w in caught:
            self.notify(str(w.message), severity="warning", timeout=8)
        self._fill_list()
        self.watch(self.query_one("#lesson-scroll", VerticalScroll), "scroll_y", self._scrolled, init=False)

    def _scrolled(self, scroll_y: float) -> None:
        """Reaching the end of a lesson marks it read."""
        scroll = self.query_one("#lesson-scroll", VerticalScroll)
        if (self.current and self.progress is not None and scroll.max_scroll_y > 0
                and scroll_y >= scroll.max_scroll_y - 1
                and not self.progress.lessons.get(self.current, {}).get("read")):
            self.progress.mark_opened(self.current, read=True)
            self._save_progress()
            self._refresh_label(self.current)

    # --- the lesson list and progress ------------------------------------------------------------------
    def _label(self, lesson: Any) -> str:
        from lessons.catalog import lesson_exercises

        part = {"architecture": "A", "training": "T", "inference": "I"}.get(lesson.part, "?")
        ids = [ex.id for ex in lesson_exercises(lesson)]
        solved = sum(1 for i in ids if self.progress is not None and self.progress.solved(i))
        seen = self.progress.lessons.get(lesson.id) if self.progress is not None else None
        mark = ("✓" if ids and solved == len(ids) else "◐" if solved else "•" if seen and seen.get("read")
                else "·" if seen is not None else " ")
        count = f"  {solved}/{len(ids)}" if solved and solved < len(ids) else ""
        return f"{mark} {part}{lesson.order:02d} {lesson.title}{count}"

    def _fill_list(self) -> None:
        from lessons.catalog import load_lessons

        lst = self.query_one("#lesson-list", OptionList)
        lst.clear_options()
        lst.add_options([Option(self._label(lesson), id=lesson.id) for lesson in load_lessons()])

    def _refresh_label(self, lesson_id: str) -> None:
        from lessons.catalog import get_lesson

        try:
            self.query_one("#lesson-list", OptionList).replace_option_prompt(lesson_id, self._label(get_lesson(lesson_id)))
        except Exception:  # noqa: BLE001 - an unknown id: nothing to relabel
            pass

    def _save_progress(self) -> None:
        from lessons.progress import save_progress

        try:
            save_progress(self.progress)
        except OSError as exc:
            self.notify(f"lesson progress not saved: {exc}", severity="warning")

    def set_model(self, summary: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
        """The open model (the app calls this when the model is read, and before mounting a late pane)."""
        from lessons.facts import lesson_facts

        self.facts = lesson_facts(summary, nodes)
        self.nodes = list(nodes)
        self.live = {}
        if self.current and self.is_mounted:
            self.open(self.current, focus=False)

    def focus_list(self) -> None:
        self.query_one("#lesson-list", OptionList).focus()

    def focus_body(self) -> None:
        """Put the keyboard in the lesson (scroll keys, `d` for the demo, Tab to the exercises)."""
        self.query_one("#lesson-scroll", VerticalScroll).focus()

    @on(OptionList.OptionSelected, "#lesson-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.open(str(event.option.id))

    def open(self, lesson_id: str, focus: bool = True) -> None:
        """Show lesson `lesson_id` with its exercises; `focus`: move the keyboard into it."""
        import warnings

        from lessons.catalog import LessonWarning, get_lesson, lesson_exercises, render_lesson

        try:
            lesson = get_lesson(lesson_id)
        except Exception as exc:  # noqa: BLE001
            self.notify(str(exc), severity="error")
            return
        changed = self.current != lesson_id
        self.current = lesson_id
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LessonWarning)
            text = render_lesson(lesson, self.facts, strict=False)
            exercises = lesson_exercises(lesson)
            questions = [_plain(render_lesson(ex.question, self.facts, strict=False)) for ex in exercises]
        if lesson.demo:
            text = f"**Demo:** press `d` to run `{lesson.demo}` on the open model.\n\n---\n\n" + text
        self.query_one("#lesson-body", Markdown).update(text)
        self.query_one("#demo-status", Static).update("")
        box = self.query_one("#exercises", Vertical)
        box.remove_children()
        states = self.progress.exercises if self.progress is not None else {}
        box.mount_all([ExerciseBox(ex, q, states.get(ex.id)) for ex, q in zip(exercises, questions)])
        if changed:
            self.query_one("#lesson-scroll", VerticalScroll).scroll_home(animate=False)
        lst = self.query_one("#lesson-list", OptionList)
        try:
            lst.highlighted = lst.get_option_index(lesson_id)
        except Exception:  # noqa: BLE001 - the list is filled on mount; nothing to highlight before
            pass
        if self.progress is not None:
            self.progress.mark_opened(lesson_id)
            self._save_progress()
            self._refresh_label(lesson_id)
        self.refresh_bindings()
        if focus:
            self.call_after_refresh(self.focus_body)

    # --- predict, then check ------------------------------------------------------------------------
    def exercise_box(self, exercise_id: str) -> ExerciseBox:
        return self.query_one(f"#ex-{exercise_id}", ExerciseBox)

    @on(Input.Submitted, ".ex-input")
    def _typed(self, event: Input.Submitted) -> None:
        event.stop()
        box = next(a for a in event.input.ancestors if isinstance(a, ExerciseBox))
        self.check(box.exercise.id, event.value)

    @on(OptionList.OptionSelected, ".ex-choices")
    def _chose(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        box = next(a for a in event.option_list.ancestors if isinstance(a, ExerciseBox))
        self.check(box.exercise.id, str(event.option.id))

    def check(self, exercise_id: str, typed: str) -> None:
        """Check a prediction against the live answer (computed here, or asked of the worker)."""
        from lessons.exercises import ANSWERS, AnswerUnavailable, compute_answer, parse_guess

        box = self.exercise_box(exercise_id)
        ex = box.exercise
        try:
            parse_guess(ex.kind, typed, ex.choices)
        except ValueError as exc:
            box.show_verdict(f"[yellow]{escape(str(exc))}[/yellow]")
            return
        live = self.live.get(ex.id)
        if live is None and ANSWERS[ex.answer].needs == "facts":
            try:
                live = self.live[ex.id] = compute_answer(ex, self.facts, self.nodes)
            except (AnswerUnavailable, LookupError, ValueError) as exc:
                box.show_verdict(f"[yellow]no answer for this model: {escape(str(exc))}[/yellow]")
                return
        if live is None:
            box.show_verdict("computing the answer on the open model (a forward pass in the worker)…")
            self._fetch_answer(ex.id, typed)
            return
        self._judge(box, typed, live)

    @work(thread=True, group="exercise-answer", exit_on_error=False)
    def _fetch_answer(self, exercise_id: str, typed: str) -> None:
        from lessons.answer_op import EXERCISE_ANSWER

        try:
            result = None
            for item in self.data_source.run_demo(EXERCISE_ANSWER, {"exercise": exercise_id}):
                if "result" in item:
                    result = item["result"]
            self.post_message(self.AnswerReady(exercise_id, typed, result, "" if result else "no answer came back"))
        except Exception as exc:  # noqa: BLE001 - shown in the exercise
            self.post_message(self.AnswerReady(exercise_id, typed, None, str(exc)))

    @on(AnswerReady)
    def _answer_ready(self, message: AnswerReady) -> None:
        from lessons.answer_op import live_answer_from_result

        try:
            box = self.exercise_box(message.exercise_id)
        except Exception:  # noqa: BLE001 - the lesson changed meanwhile
            return
        if message.result is None:
            box.show_verdict(f"[red]could not compute the answer: {escape(message.error)}[/red]")
            return
        live = self.live[message.exercise_id] = live_answer_from_result(message.result)
        self._judge(box, message.typed, live)

    def _judge(self, box: ExerciseBox, typed: str, live: Any) -> None:
        from lessons.exercises import check_answer

        result = check_answer(box.exercise, typed, live)
        if result.problem:
            box.show_verdict(f"[yellow]{escape(result.problem)}[/yellow]")
            return
        verdict = "[green]✓ correct[/green]" if result.correct else "[red]✗ not quite[/red]"
        box.show_verdict(f"{verdict}: you said {escape(typed.strip())}; the open model's answer is "
                         f"[b]{escape(result.answer)}[/b]\n[dim]{escape(result.explanation)}[/dim]")
        if self.progress is not None:
            self.progress.record_attempt(box.exercise.id, typed.strip(), result.correct)
            if self.current:
                self.progress.mark_opened(self.current, read=True)
            self._save_progress()
            if self.current:
                self._refresh_label(self.current)

    @on(Markdown.LinkClicked)
    def _link(self, event: Markdown.LinkClicked) -> None:
        event.stop()
        if event.href.startswith("llm:"):
            self.post_message(FollowLink(event.href))
        else:
            self.notify(f"external link (open it in a browser): {event.href}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`d` is offered (not dimmed) only while the open lesson has a demo."""
        if action == "run_demo":
            from lessons.catalog import get_lesson

            try:
                return True if self.current and get_lesson(self.current).demo else None
            except Exception:  # noqa: BLE001
                return None
        return True

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
