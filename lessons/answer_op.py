"""The worker side of the exercises whose answer needs the model's weights (`ANSWERS[key].needs == "model"`).

The engine never imports the lessons, so this is registered from here through the worker's demo registry
(`internals.worker.demos`), under the name `EXERCISE_ANSWER`: the explorer runs it like a demo
(`run_demo("exercise-answer", {"exercise": id})`), the worker calls `compute_answer(..., opened=...)` on the model
it owns and answers a `LiveAnswerResult`. The pane then checks the typed guess with `check_answer` itself.
"""

from __future__ import annotations

from typing import Any, TypedDict

from internals.errors import UserError

__all__ = ["EXERCISE_ANSWER", "LiveAnswerResult", "answer_exercise", "live_answer_from_result", "register_answer_op"]

#: The demo-registry name of the operation.
EXERCISE_ANSWER = "exercise-answer"


class LiveAnswerResult(TypedDict):
    exercise: str
    value: Any  # int | float | list[int] | str
    explanation: str
    tolerance: float
    unit: str


def answer_exercise(opened: Any, params: dict[str, Any], emit: Any = None, progress: Any = None,
                    should_stop: Any = None) -> dict[str, Any]:
    """The live answer (a `LiveAnswerResult`) of exercise `params["exercise"]` for the open model (facts from its
    card and tree)."""
    from lessons.catalog import all_exercises
    from lessons.exercises import AnswerUnavailable, compute_answer
    from lessons.facts import lesson_facts

    wanted = str(params.get("exercise", ""))
    exercise = next((ex for ex in all_exercises() if ex.id == wanted), None)
    if exercise is None:
        raise UserError(f"unknown exercise {wanted!r}: give the id of a lesson's exercise block")
    if progress is not None:
        progress(0.1, f"computing the answer of {wanted}")
    summary, tree = opened.summary(), opened.tree()
    try:
        live = compute_answer(exercise, lesson_facts(summary, tree), tree, opened=opened)
    except AnswerUnavailable as exc:
        raise UserError(f"{wanted}: {exc}") from None
    value = live.value if not isinstance(live.value, tuple) else list(live.value)
    result = LiveAnswerResult(exercise=wanted, value=value, explanation=live.explanation,
                              tolerance=float(live.tolerance), unit=live.unit)
    return dict(result)  # a demo's result dict (internals.worker.demos.DemoFunction)


def live_answer_from_result(result: dict[str, Any]):
    """The `LiveAnswer` a `LiveAnswerResult` carries (the pane checks the guess against it)."""
    from lessons.exercises import LiveAnswer

    value = result["value"]
    if isinstance(value, float) and value.is_integer() and not result.get("tolerance"):
        value = int(value)
    return LiveAnswer(value, str(result.get("explanation", "")), float(result.get("tolerance") or 0.0),
                      str(result.get("unit", "")))


def register_answer_op() -> None:
    """Register `answer_exercise` with the worker's demo registry (idempotent)."""
    from internals.worker.demos import register

    register(EXERCISE_ANSWER, answer_exercise,
             {"title": "Exercise answer", "requires": [], "optional": [], "params": {"exercise": ""},
              "description": "the live answer of a lesson exercise that needs the model's weights"})
