"""The seams: the engine never imports textual; the UI never imports torch (checked in fresh interpreters)."""

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
