"""Lessons: markdown lessons on LLM architecture and training, filled with live numbers from the open model.

Plain Python only (no torch, no textual): `lessons.catalog` loads, renders and checks the lessons,
`lessons.facts` derives the numbers they quote from the engine's summary and tree, `lessons.exercises` computes
and checks the answers of the predict-then-check exercises, `lessons.progress` remembers progress.
"""

from lessons.catalog import (
    DEMO_IDS,
    EXERCISE_KINDS,
    LINK_KINDS,
    PART_TITLES,
    PARTS,
    VIEWS,
    Exercise,
    Lesson,
    LessonError,
    LessonWarning,
    Link,
    LinkError,
    all_exercises,
    get_lesson,
    lesson_exercises,
    lesson_links,
    load_lessons,
    parse_exercises,
    parse_link,
    placeholders,
    render_lesson,
    resolve_link,
)
from lessons.facts import lesson_facts

__all__ = [
    "DEMO_IDS", "LINK_KINDS", "PART_TITLES", "PARTS", "VIEWS", "Lesson", "LessonError", "LessonWarning", "Link",
    "LinkError", "get_lesson", "lesson_facts", "lesson_links", "load_lessons", "parse_link", "placeholders",
    "render_lesson", "resolve_link", "EXERCISE_KINDS", "Exercise", "all_exercises", "lesson_exercises",
    "parse_exercises",
]
