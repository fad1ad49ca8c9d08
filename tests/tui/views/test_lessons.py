"""The lessons pane alone: a lesson with the model's numbers, links posted as FollowLink, a demo run from the
data source, Esc posted as CloseLessons."""

from __future__ import annotations

import pytest
from textual.widgets import Markdown

from tui.messages import CloseLessons, FollowLink
from tui.views.lessons import LessonsPane
from views.harness import FakeSource, ViewApp, settle

pytestmark = pytest.mark.anyio


def lessons_app(source: FakeSource) -> tuple[LessonsPane, ViewApp]:
    """A lessons pane that knows the recorded model (summary and tree), in its host app."""
    pane = LessonsPane(data_source=source)
    pane.set_model(source.data["summary"], source.data["tree"])
    return pane, ViewApp(pane)


async def test_links_demo_and_close_are_messages(source):
    pane, app = lessons_app(source)
    async with app.run_test(size=(140, 40)) as pilot:
        pane.open("peft")
        await pilot.pause()
        assert pane.current == "peft"
        pane.query_one(Markdown).post_message(Markdown.LinkClicked(pane.query_one(Markdown), "llm:view/attention"))
        await pilot.pause()
        assert [m.target for m in app.of(FollowLink)] == ["llm:view/attention"]
        pane.focus_list()
        await pilot.press("d")
        await settle(app, pilot)
        assert source.calls[-1][0] == "run_demo" and len(pane.points["loss"]) == 4
        status = str(pane.query_one("#demo-status").render())
        assert "demo finished" in status and "counts.trainable: 1234" in status
        await pilot.press("escape")
        await pilot.pause()
        assert app.of(CloseLessons)


async def test_predict_then_check_and_progress_between_sessions(source, tmp_path, monkeypatch):
    """A wrong then a right prediction on the GQA lesson's key-shape exercise; the attempts and the solved
    exercise are saved to the progress file and shown again by a new pane (a new session)."""
    from textual.widgets import Input

    from lessons.progress import load_progress

    progress_file = tmp_path / "progress.json"
    monkeypatch.setenv("LLM_INTERNALS_PROGRESS", str(progress_file))
    k_shape = next(n for n in source.data["tree"] if n["name"] == "model.layers.0.self_attn.k_proj.weight")["shape"]
    pane, app = lessons_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        pane.open("gqa")
        await settle(app, pilot)
        box = pane.exercise_box("gqa-k-shape")
        field = box.query_one(Input)
        field.focus()
        await pilot.press(*"1x1", "enter")
        await pilot.pause()
        verdict = str(box.query_one(".ex-verdict").render())
        assert "not quite" in verdict and f"[{k_shape[0]}, {k_shape[1]}]" in verdict and "[n_kv·d_head, d]" in verdict
        field.value = ""
        await pilot.press(*f"{k_shape[0]}x{k_shape[1]}", "enter")
        await pilot.pause()
        assert "✓ correct" in str(box.query_one(".ex-verdict").render())
    saved = load_progress(progress_file)
    assert saved.exercises["gqa-k-shape"]["attempts"] == 2 and saved.solved("gqa-k-shape")
    assert saved.lessons["gqa"]["read"] and not saved.solved("gqa-kv-bytes")

    pane2, app2 = lessons_app(source)
    async with app2.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        lst = pane2.query_one("#lesson-list")
        label = str(lst.get_option("gqa").prompt)
        assert label.startswith("◐") and "1/2" in label  # one of the lesson's two exercises solved
        pane2.open("gqa")
        await settle(app2, pilot)
        assert "solved" in str(pane2.exercise_box("gqa-k-shape").query_one(".ex-question").render())


async def test_a_model_answer_is_asked_of_the_worker(source, monkeypatch):
    """An exercise whose answer needs the weights runs the lessons' exercise-answer op in the worker."""
    from lessons.answer_op import EXERCISE_ANSWER

    def run_demo(name, params=None, on_progress=None):
        source.calls.append(("run_demo", (name,), {"params": params}))
        yield {"result": {"exercise": params["exercise"], "value": 1, "explanation": "layer 1 head 0 looks back",
                          "tolerance": 0.0, "unit": ""}}

    monkeypatch.setattr(source, "run_demo", run_demo)
    pane, app = lessons_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        pane.open("attention-patterns")
        await settle(app, pilot)
        ex = next(b.exercise for b in pane.query("ExerciseBox") if b.exercise.answer == "best_previous_token_layer")
        pane.check(ex.id, "1")
        await settle(app, pilot)
        assert source.calls[-1] == ("run_demo", (EXERCISE_ANSWER,), {"params": {"exercise": ex.id}})
        assert "✓ correct" in str(pane.exercise_box(ex.id).query_one(".ex-verdict").render())


async def test_reading_to_the_end_marks_a_lesson_read(source):
    from lessons.progress import load_progress

    pane, app = lessons_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        pane.open("rope")
        await settle(app, pilot)
        assert not load_progress().lessons["rope"]["read"]
        assert str(pane.query_one("#lesson-list").get_option("rope").prompt).startswith("·")
        pane.query_one("#lesson-scroll").scroll_end(animate=False)
        await settle(app, pilot)
        assert load_progress().lessons["rope"]["read"]
        assert str(pane.query_one("#lesson-list").get_option("rope").prompt).startswith("•")
