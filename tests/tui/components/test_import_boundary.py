"""The components never import torch, and only `plotting.py` touches textual-plotext / plotext."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tui.components

COMPONENTS = Path(tui.components.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_plotting_imports_plotext() -> None:
    for path in sorted(COMPONENTS.glob("*.py")):
        plotext_imports = imported_modules(path) & {"plotext", "textual_plotext"}
        if path.name == "plotting.py":
            # plots go through textual_plotext; plotext itself only for its stable duplicate removal
            assert "textual_plotext" in plotext_imports
        else:
            assert not plotext_imports, f"{path.name} imports {plotext_imports}"


def test_components_do_not_import_torch() -> None:
    modules = sorted(f"tui.components.{p.stem}" for p in COMPONENTS.glob("*.py") if p.stem != "__init__")
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers', 'safetensors'})\n"
    code += "assert not bad, bad\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for path in COMPONENTS.glob("*.py"):
        assert "torch" not in imported_modules(path)
