"""Progress through the lessons and their exercises, remembered between sessions.

Stored as a small JSON file in the user's data folder: `$XDG_DATA_HOME/llm-internals/progress.json`
(`~/.local/share/llm-internals/progress.json` when XDG_DATA_HOME is unset), or the path in
$LLM_INTERNALS_PROGRESS. Writes are atomic (a temporary file in the same folder, then `os.replace`), so a crash
never leaves half a file; a file that cannot be read or parsed is ignored with a `ProgressWarning` (and left
in place until the next save replaces it). Plain Python: no torch, no textual.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PROGRESS_ENV", "ProgressWarning", "Progress", "progress_path", "load_progress", "save_progress"]

PROGRESS_ENV = "LLM_INTERNALS_PROGRESS"
_VERSION = 1


class ProgressWarning(UserWarning):
    """The progress file could not be read; progress starts empty."""


@dataclass
class Progress:
    """lessons: lesson id -> {"read": bool, "last_opened": unix time}; exercises: exercise id ->
    {"correct": bool, "attempts": int, "last_answer": str}."""

    lessons: dict[str, dict[str, Any]] = field(default_factory=dict)
    exercises: dict[str, dict[str, Any]] = field(default_factory=dict)

    def mark_opened(self, lesson_id: str, *, read: bool = False) -> None:
        entry = self.lessons.setdefault(lesson_id, {"read": False})
        entry["last_opened"] = time.time()
        entry["read"] = bool(entry.get("read")) or read

    def record_attempt(self, exercise_id: str, answer: str, correct: bool) -> None:
        """One answer to an exercise; once correct, it stays solved."""
        entry = self.exercises.setdefault(exercise_id, {"correct": False, "attempts": 0})
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        entry["last_answer"] = str(answer)
        entry["correct"] = bool(entry.get("correct")) or bool(correct)

    def solved(self, exercise_id: str) -> bool:
        return bool(self.exercises.get(exercise_id, {}).get("correct"))

    def to_json(self) -> dict[str, Any]:
        return {"version": _VERSION, "lessons": self.lessons, "exercises": self.exercises}


def progress_path() -> Path:
    explicit = os.environ.get(PROGRESS_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "llm-internals" / "progress.json"


def load_progress(path: str | Path | None = None) -> Progress:
    """The saved progress; empty when there is none, or (with a ProgressWarning) when the file is broken."""
    file = Path(path) if path is not None else progress_path()
    if not file.exists():
        return Progress()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        lessons, exercises = data.get("lessons", {}), data.get("exercises", {})
        if not isinstance(lessons, dict) or not isinstance(exercises, dict):
            raise ValueError("'lessons' and 'exercises' must be objects")
        lessons = {str(k): dict(v) for k, v in lessons.items() if isinstance(v, dict)}
        exercises = {str(k): dict(v) for k, v in exercises.items() if isinstance(v, dict)}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        warnings.warn(f"lesson progress in {file} is unreadable ({exc}); starting afresh", ProgressWarning,
                      stacklevel=2)
        return Progress()
    return Progress(lessons=lessons, exercises=exercises)


def save_progress(progress: Progress, path: str | Path | None = None) -> Path:
    """Write atomically (temporary file in the same folder, then os.replace); returns the path written."""
    file = Path(path) if path is not None else progress_path()
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".progress-", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(progress.to_json(), out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, file)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return file
