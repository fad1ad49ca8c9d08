"""The seams: the engine never imports textual, the UI or the lessons; the UI never imports torch; only the
composition root (llm_internals.py) imports the UI. Checked in fresh interpreters and statically (every import
statement, including those inside functions)."""

from __future__ import annotations

import subprocess
import sys

from tests_helpers import REPO

ENGINE_MODULES = ["internals", "internals.model", "internals.cli", "internals.cli.commands", "internals.facts",
                  "internals.structure", "internals.stats_service"]


def _loaded_after(imports: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports) + "print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(out.stdout.split())


def test_engine_never_imports_textual():
    loaded = _loaded_after(ENGINE_MODULES)
    assert not any(m == "textual" or m.startswith("textual.") for m in loaded)


def test_ui_never_imports_torch():
    # The package walk runs in the child too: pytest's own module names must not leak into the list.
    code = ("import importlib, pkgutil, sys, tui\n"
            "for m in pkgutil.walk_packages(tui.__path__, prefix='tui.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = set(out.stdout.split())
    assert "tui.app" in loaded and "tui.components.heatmap" in loaded
    assert "torch" not in loaded and "transformers" not in loaded


def test_lessons_import_neither():
    loaded = _loaded_after(["lessons"])
    assert "torch" not in loaded and "textual" not in loaded


# --- static: every import statement, including those inside functions --------------------------------------

import ast  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

#: package folder -> top-level modules it must never import (anywhere in its code, even inside a function).
FORBIDDEN = {
    "internals": ("textual", "tui", "lessons", "llm_internals"),
    "tui": ("torch", "transformers", "accelerate", "peft", "trl", "llm_internals"),
    "lessons": ("textual", "tui", "llm_internals"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in a file; relative imports are resolved within its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside its own package
                continue
            found.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def boundary_violations(root: Path) -> list[str]:
    """Every import that crosses a forbidden boundary, as 'file:line imports module'."""
    out = []
    for package, banned in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imported_modules(path):
                top = module.split(".")[0]
                if top in banned:
                    out.append(f"{path.relative_to(root)}:{line} imports {module}")
    return out


def test_no_module_crosses_a_boundary_even_inside_a_function():
    assert boundary_violations(REPO) == []


def test_only_the_composition_root_imports_the_ui():
    importers = []
    for path in sorted(REPO.glob("*.py")) + sorted((REPO / "internals").rglob("*.py")) + sorted((REPO / "lessons").rglob("*.py")):
        if any(m.split(".")[0] in ("tui", "textual") for _, m in imported_modules(path)):
            importers.append(path.relative_to(REPO).as_posix())
    assert importers == ["llm_internals.py"]


def test_a_deliberate_violation_inside_a_function_is_caught(tmp_path):
    for package in FORBIDDEN:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "demo_model*"))
    target = tmp_path / "internals" / "aggregates.py"
    target.write_text(target.read_text() + "\n\ndef _sneaky():\n    import textual.app\n    return textual.app\n")
    lessons_target = tmp_path / "lessons" / "facts.py"
    lessons_target.write_text(lessons_target.read_text() + "\n\ndef _ui():\n    from tui.app import ExplorerApp\n")
    violations = boundary_violations(tmp_path)
    assert len(violations) == 2, violations
    assert violations[0].startswith("internals/aggregates.py:") and violations[0].endswith("imports textual.app")
    assert violations[1].startswith("lessons/facts.py:") and violations[1].endswith("imports tui.app")


def test_engine_cli_without_the_root_does_not_load_lessons_or_tui():
    loaded = _loaded_after(["internals.cli.main", "internals.worker.service", "internals.worker.ops"])
    assert not any(m.split(".")[0] in ("lessons", "tui", "textual") for m in loaded)
