"""The lessons catalog: load the markdown lessons, fill in live numbers, and check their `llm:` links.

Plain Python (no torch, no textual), so that the catalog can be loaded and checked anywhere.

A lesson is a markdown file `lessons/<part>/NN-slug.md` that starts with a front-matter block:

    ---
    id: gqa
    title: Grouped-query attention
    part: architecture
    demo: lora          (optional: one of DEMO_IDS)
    requires: peft      (optional: Python packages its demo needs, comma-separated)
    ---

Its body may hold `{name}` / `{name:fmt}` placeholders filled from the facts of the open model
(`lessons.facts.lesson_facts`); `{{` and `}}` are literal braces. Links with the `llm:` scheme move the
explorer (docs/contracts.md, "Lesson links").
"""

from __future__ import annotations

import os
import re
import string
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qsl, unquote

__all__ = [
    "PARTS", "PART_TITLES", "DEMO_IDS", "VIEWS", "LINK_KINDS", "Lesson", "Link", "LessonError", "LinkError",
    "LessonWarning", "load_lessons", "get_lesson", "render_lesson", "placeholders", "lesson_links",
    "parse_link", "resolve_link", "EXERCISE_KINDS", "Exercise", "parse_exercises", "lesson_exercises",
    "all_exercises",
]

#: Parts in display order: directory name -> title.
PART_TITLES = {"architecture": "Part 1 · Architecture", "training": "Part 2 · The training lifecycle",
               "inference": "Part 3 · Inference, quantization and reasoning"}
PARTS = tuple(PART_TITLES)
#: Demo ids a lesson may name in its `demo:` field (the demos themselves live elsewhere).
DEMO_IDS = frozenset({"pretrain", "before-after", "lora", "dpo", "grpo", "distill", "teacher-sft", "one-head",
                      "sampling", "pass-at-k"})
#: Views an `llm:view/<view>` link may name.
VIEWS = frozenset({"summary", "cross-layer", "attention", "tokens", "lens", "experts", "chat-template", "activations",
                   "patching", "attribution", "diff"})
LINK_KINDS = ("tensor", "node", "view", "attention", "lesson")
#: Set to "1" to make unknown placeholders raise in `render_lesson` (tests pass strict=True instead).
STRICT_ENV = "LLM_INTERNALS_STRICT_LESSONS"

_FRONT_KEYS = {"id", "title", "part", "demo", "requires"}
_FILE_RE = re.compile(r"^(\d{2})-([a-z0-9][a-z0-9-]*)\.md$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ROOT = Path(__file__).resolve().parent


class LessonError(ValueError):
    """A lesson file is malformed, or (strict rendering) names a placeholder that no fact provides."""


class LinkError(ValueError):
    """An `llm:` link does not follow the syntax in docs/contracts.md."""


class LessonWarning(UserWarning):
    """Raised as a warning when a lesson renders with a missing or unformattable fact (shown as "?")."""


@dataclass(frozen=True)
class Lesson:
    """One lesson. `raw` is the markdown body (front matter removed), placeholders not yet filled."""

    id: str
    title: str
    part: str
    order: int
    demo: str | None
    requires: tuple[str, ...]
    path: Path
    raw: str = field(repr=False)

    @property
    def part_title(self) -> str:
        return PART_TITLES.get(self.part, self.part)


@dataclass(frozen=True)
class Link:
    """A parsed `llm:` link target. Only the fields of its kind are set."""

    kind: str  # one of LINK_KINDS
    name: str | None = None  # tensor / node: parameter or module name ("" is the root module)
    view: str | None = None  # view
    layer: int | None = None  # attention
    head: int | None = None  # attention
    prompt: str | None = None  # attention (decoded text; None when the link gives none)
    lesson: str | None = None  # lesson id


# ---------------------------------------------------------------------------------------------------------------
# loading

def _parse_front_matter(text: str, path: Path) -> tuple[dict[str, str], str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise LessonError(f"{path}: a lesson must start with a '---' front-matter block")
    meta: dict[str, str] = {}
    for i, line in enumerate(lines[1:], start=1):
        s = line.strip()
        if s == "---":
            return meta, "".join(lines[i + 1:]).lstrip("\n")
        if not s or s.startswith("#"):
            continue
        key, sep, value = s.partition(":")
        key = key.strip()
        if not sep or key not in _FRONT_KEYS:
            raise LessonError(f"{path}:{i + 1}: front matter: expected one of {sorted(_FRONT_KEYS)} as 'key: value', "
                              f"got {s!r}")
        if key in meta:
            raise LessonError(f"{path}:{i + 1}: front matter: {key!r} given twice")
        meta[key] = value.strip().strip("'\"")
    raise LessonError(f"{path}: front-matter block is not closed by '---'")


def _load_one(path: Path, part: str) -> Lesson:
    m = _FILE_RE.match(path.name)
    if not m:
        raise LessonError(f"{path}: lesson files are named NN-slug.md (two digits, lowercase slug)")
    meta, body = _parse_front_matter(path.read_text(encoding="utf-8"), path)
    for key in ("id", "title", "part"):
        if not meta.get(key):
            raise LessonError(f"{path}: front matter lacks {key!r}")
    if not _ID_RE.match(meta["id"]):
        raise LessonError(f"{path}: lesson id {meta['id']!r} must be lowercase letters, digits and '-'")
    if meta["part"] != part:
        raise LessonError(f"{path}: part {meta['part']!r} does not match its folder {part!r}")
    demo = meta.get("demo") or None
    if demo is not None and demo not in DEMO_IDS:
        raise LessonError(f"{path}: unknown demo {demo!r}; known: {sorted(DEMO_IDS)}")
    requires = tuple(x.strip() for x in meta.get("requires", "").strip("[]").split(",") if x.strip())
    return Lesson(id=meta["id"], title=meta["title"], part=part, order=int(m.group(1)), demo=demo,
                  requires=requires, path=path, raw=body)


@lru_cache(maxsize=8)
def _load_cached(root: Path) -> tuple[Lesson, ...]:
    lessons: list[Lesson] = []
    for part in PARTS:
        folder = root / part
        if not folder.is_dir():
            continue
        lessons.extend(_load_one(p, part) for p in sorted(folder.glob("*.md")))
    seen: dict[str, Path] = {}
    orders: dict[tuple[str, int], Path] = {}
    for lesson in lessons:
        if lesson.id in seen:
            raise LessonError(f"lesson id {lesson.id!r} is used by {seen[lesson.id]} and {lesson.path}")
        seen[lesson.id] = lesson.path
        if (lesson.part, lesson.order) in orders:
            raise LessonError(f"{lesson.path}: order {lesson.order:02d} is also used by {orders[lesson.part, lesson.order]}")
        orders[lesson.part, lesson.order] = lesson.path
    return tuple(sorted(lessons, key=lambda x: (PARTS.index(x.part), x.order)))


def load_lessons(root: str | Path | None = None) -> list[Lesson]:
    """All lessons, in reading order (Part 1 then Part 2, each by its NN prefix)."""
    return list(_load_cached(Path(root).resolve() if root is not None else _ROOT))


def get_lesson(lesson_id: str, root: str | Path | None = None) -> Lesson:
    for lesson in load_lessons(root):
        if lesson.id == lesson_id:
            return lesson
    raise KeyError(f"no lesson with id {lesson_id!r}")


# ---------------------------------------------------------------------------------------------------------------
# rendering

_FORMATTER = string.Formatter()


def placeholders(markdown: str) -> list[str]:
    """The fact names a lesson body uses, in order of appearance (with repeats)."""
    try:
        return [name for _, name, _, _ in _FORMATTER.parse(markdown) if name is not None]
    except ValueError as exc:  # a lone '{' or '}'
        raise LessonError(f"bad placeholder syntax ({exc}); write literal braces as '{{{{' and '}}}}'") from exc


def _strict_default() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0", "false", "no")


def render_lesson(lesson: Lesson | str, facts: Mapping[str, object], *, strict: bool | None = None) -> str:
    """The lesson's markdown with every `{name}` / `{name:fmt}` filled from `facts`.

    A fact whose value is None (not known for the open model) renders as "n/a". An unknown name, a
    malformed placeholder or a format that does not fit the value raises `LessonError` when `strict` (tests;
    or the LLM_INTERNALS_STRICT_LESSONS environment variable), and otherwise renders as "?" with a
    `LessonWarning`, so that a lesson always opens in the explorer.
    """
    strict = _strict_default() if strict is None else strict
    text = lesson.raw if isinstance(lesson, Lesson) else lesson
    where = str(lesson.path) if isinstance(lesson, Lesson) else "lesson"
    try:
        text = _EXERCISE_RE.sub(_exercise_as_text, text)
    except LessonError:
        if strict:
            raise

    def problem(msg: str) -> str:
        if strict:
            raise LessonError(f"{where}: {msg}")
        warnings.warn(f"{where}: {msg}", LessonWarning, stacklevel=3)
        return "?"

    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        if strict:
            raise LessonError(f"{where}: bad placeholder syntax ({exc}); write literal braces as '{{{{' and '}}}}'") from exc
        warnings.warn(f"{where}: bad placeholder syntax ({exc}); shown unrendered", LessonWarning, stacklevel=2)
        return text
    out: list[str] = []
    for literal, name, spec, conversion in parsed:
        out.append(literal)
        if name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or conversion:
            out.append(problem(f"placeholder {{{name}}} must be a plain fact name (no attribute, index or '!')"))
            continue
        if name not in facts:
            out.append(problem(f"unknown placeholder {{{name}}} (no such fact for this model)"))
            continue
        value = facts[name]
        if value is None:
            out.append("n/a")
            continue
        try:
            out.append(format(value, spec or ""))
        except (ValueError, TypeError) as exc:
            out.append(problem(f"cannot format {{{name}:{spec}}} with value {value!r}: {exc}"))
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# exercises ("predict, then check")

#: Kinds of answer an exercise takes: a number, a tensor shape, one of listed choices, or a short text.
EXERCISE_KINDS = ("number", "shape", "choice", "text")
_EXERCISE_KEYS = {"id", "answer", "kind", "choices", "given"}
_EXERCISE_RE = re.compile(r"^ {0,3}```exercise[ \t]*\n(.*?)^ {0,3}```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Exercise:
    """One predict-then-check exercise of a lesson, parsed from a fenced block:

        ```exercise
        id: gqa-k-shape                 unique across all lessons
        answer: k_proj_shape_first      a key of lessons.exercises.ANSWERS (the answer is computed, never written)
        kind: shape                     number | shape | choice | text
        choices: a, b, c                (choice only) the options offered
        given: rewards=1,0,0,1; index=0 (optional) inputs the question states, passed to the answer function
        Predict the shape of `{k_weight_first}`.   every other line is the question (placeholders allowed)
        ```
    """

    id: str
    lesson: str
    answer: str
    kind: str
    question: str  # raw: placeholders not yet filled (render with render_lesson(question, facts))
    choices: tuple[str, ...] = ()
    given: tuple[tuple[str, str], ...] = ()

    @property
    def given_dict(self) -> dict[str, str]:
        return dict(self.given)


def parse_exercises(markdown: str, lesson_id: str = "", where: str = "lesson") -> list[Exercise]:
    """Every ```exercise block of a lesson body, in order; raises LessonError on a malformed block."""
    out: list[Exercise] = []
    for m in _EXERCISE_RE.finditer(markdown):
        meta: dict[str, str] = {}
        question: list[str] = []
        for line in m.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in _EXERCISE_KEYS and not question:
                meta[key.strip()] = value.strip()
            elif line.strip():
                question.append(line.strip())
        for key in ("id", "answer", "kind"):
            if not meta.get(key):
                raise LessonError(f"{where}: an exercise block lacks '{key}:'")
        if not _ID_RE.match(meta["id"]):
            raise LessonError(f"{where}: exercise id {meta['id']!r} must be lowercase letters, digits and '-'")
        if meta["kind"] not in EXERCISE_KINDS:
            raise LessonError(f"{where}: exercise {meta['id']}: kind must be one of {', '.join(EXERCISE_KINDS)}")
        choices = tuple(c.strip() for c in meta.get("choices", "").split(",") if c.strip())
        if (meta["kind"] == "choice") != bool(choices):
            raise LessonError(f"{where}: exercise {meta['id']}: 'choices:' goes with kind 'choice' (and only it)")
        given = []
        for part in meta.get("given", "").split(";"):
            if part.strip():
                k, eq, v = part.partition("=")
                if not eq:
                    raise LessonError(f"{where}: exercise {meta['id']}: 'given:' is 'name=value; name=value'")
                given.append((k.strip(), v.strip()))
        if not question:
            raise LessonError(f"{where}: exercise {meta['id']} has no question")
        out.append(Exercise(id=meta["id"], lesson=lesson_id, answer=meta["answer"], kind=meta["kind"],
                            question=" ".join(question), choices=choices, given=tuple(given)))
    return out


def lesson_exercises(lesson: Lesson) -> list[Exercise]:
    """The exercises of one lesson, in order."""
    return parse_exercises(lesson.raw, lesson.id, str(lesson.path))


def all_exercises(root: str | Path | None = None) -> list[Exercise]:
    """Every exercise of every lesson, in reading order; ids are unique (LessonError otherwise)."""
    found: list[Exercise] = []
    seen: set[str] = set()
    for lesson in load_lessons(root):
        for ex in lesson_exercises(lesson):
            if ex.id in seen:
                raise LessonError(f"{lesson.path}: exercise id {ex.id!r} is used twice")
            seen.add(ex.id)
            found.append(ex)
    return found


def _exercise_as_text(m: re.Match) -> str:
    """How an exercise block reads in the rendered lesson: a quoted question (the pane adds the input)."""
    ex = parse_exercises(m.group(0))[0]
    options = f" Choose one of: {', '.join(ex.choices)}." if ex.choices else ""
    return f"> **Predict, then check** (`{ex.id}`): {ex.question}{options}\n"


# ---------------------------------------------------------------------------------------------------------------
# links

# inline links [text](llm:... "title"), autolinks <llm:...>, and reference definitions [ref]: llm:...
_INLINE_RE = re.compile(r"\]\(\s*<?(llm:[^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_AUTO_RE = re.compile(r"<(llm:[^>\s]*)>")
_REFDEF_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(llm:[^\s>]*)>?", re.MULTILINE)
_FENCE_RE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN_RE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)


def lesson_links(markdown: str) -> list[str]:
    """Every `llm:` link target in (rendered) markdown, in order; code blocks and code spans are skipped."""
    text = _FENCE_RE.sub("", markdown)
    text = _CODE_SPAN_RE.sub("", text)
    found: list[tuple[int, str]] = []
    for rx in (_INLINE_RE, _AUTO_RE, _REFDEF_RE):
        found.extend((m.start(1), m.group(1)) for m in rx.finditer(text))
    return [target for _, target in sorted(found)]


def _nonneg_int(value: str, what: str, target: str) -> int:
    if not re.fullmatch(r"\d+", value):
        raise LinkError(f"{target!r}: {what} must be a non-negative integer, got {value!r}")
    return int(value)


def parse_link(target: str) -> Link:
    """Parse an `llm:` link target (docs/contracts.md, "Lesson links"); raises `LinkError` on bad syntax."""
    if not isinstance(target, str) or not target.startswith("llm:"):
        raise LinkError(f"{target!r}: an explorer link starts with 'llm:'")
    rest = target[4:]
    if rest.startswith("attention"):
        tail = rest[len("attention"):]
        if not tail.startswith("?"):
            raise LinkError(f"{target!r}: expected 'llm:attention?layer=L&head=H&prompt=...'")
        try:
            pairs = parse_qsl(tail[1:], keep_blank_values=True, strict_parsing=True)
        except ValueError as exc:
            raise LinkError(f"{target!r}: bad query string ({exc})") from exc
        params: dict[str, str] = {}
        for key, value in pairs:
            if key not in ("layer", "head", "prompt"):
                raise LinkError(f"{target!r}: unknown parameter {key!r} (layer, head, prompt)")
            if key in params:
                raise LinkError(f"{target!r}: parameter {key!r} given twice")
            params[key] = value
        for key in ("layer", "head"):
            if key not in params:
                raise LinkError(f"{target!r}: missing {key}=")
        return Link(kind="attention", layer=_nonneg_int(params["layer"], "layer", target),
                    head=_nonneg_int(params["head"], "head", target), prompt=params.get("prompt"))
    kind, slash, value = rest.partition("/")
    if not slash or kind not in LINK_KINDS:
        raise LinkError(f"{target!r}: expected llm:tensor/..., llm:node/..., llm:view/..., llm:attention?... "
                        "or llm:lesson/...")
    value = unquote(value)
    if re.search(r"\s", value):
        raise LinkError(f"{target!r}: names contain no whitespace")
    if kind == "tensor":
        if not value:
            raise LinkError(f"{target!r}: missing parameter name")
        return Link(kind="tensor", name=value)
    if kind == "node":
        return Link(kind="node", name=value)  # "" is the root module
    if kind == "view":
        if value not in VIEWS:
            raise LinkError(f"{target!r}: unknown view {value!r}; views: {', '.join(sorted(VIEWS))}")
        return Link(kind="view", view=value)
    if not _ID_RE.match(value):
        raise LinkError(f"{target!r}: bad lesson id {value!r}")
    return Link(kind="lesson", lesson=value)


def resolve_link(link: Link, tree_names: set[str], facts: Mapping[str, object], *,
                 lesson_ids: set[str] | None = None) -> str | None:
    """Why `link` cannot be followed on the open model (an error message), or None when it resolves.

    tree_names: every node name of the tree (modules and parameters); facts: `lesson_facts(...)` of the same
    model (for the layer and head counts); lesson_ids: defaults to the ids of `load_lessons()`.
    """
    if link.kind in ("tensor", "node"):
        if link.name not in tree_names:
            what = "parameter" if link.kind == "tensor" else "module"
            return f"no {what} named {link.name!r} in this model"
        return None
    if link.kind == "view":
        return None if link.view in VIEWS else f"unknown view {link.view!r}"
    if link.kind == "attention":
        layers, heads = facts.get("num_layers"), facts.get("num_attention_heads")
        if not isinstance(layers, int) or not isinstance(heads, int):
            return "this model's layer and head counts are unknown"
        if link.layer is None or not 0 <= link.layer < layers:
            return f"layer {link.layer} is out of range (this model has layers 0..{layers - 1})"
        if link.head is None or not 0 <= link.head < heads:
            return f"head {link.head} is out of range (this model has heads 0..{heads - 1})"
        return None
    if link.kind == "lesson":
        ids = lesson_ids if lesson_ids is not None else {x.id for x in load_lessons()}
        return None if link.lesson in ids else f"no lesson with id {link.lesson!r}"
    return f"unknown link kind {link.kind!r}"
