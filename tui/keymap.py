"""User key remapping: a JSON file of {"binding id": "keys"}, applied with Textual's keymap.

Every binding of the explorer has a stable id (`?` lists them), e.g. `{"view.attention": "a", "app.quit":
"ctrl+q"}`. The file is `$LLM_INTERNALS_KEYMAP`, else `$XDG_CONFIG_HOME/llm-internals/keymap.json` (default
`~/.config/llm-internals/keymap.json`). A missing file means the default keys; a broken one is reported and
ignored, never fatal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.dom import DOMNode


def keymap_path() -> Path:
    explicit = os.environ.get("LLM_INTERNALS_KEYMAP")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "llm-internals" / "keymap.json"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], str | None]:
    """(keymap, problem): the user's remapped bindings, and a one-line reason when the file was ignored."""
    path = path or keymap_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as exc:
        return {}, f"{path} was ignored: it is not readable JSON ({str(exc).splitlines()[0]})"
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in data.items()):
        return {}, f'{path} was ignored: it must be a JSON object of binding id to keys, e.g. {{"view.attention": "a"}}'
    return data, None


def key_shown(node: DOMNode, binding_id: str) -> str:
    """The key that runs binding `binding_id` on `node` now, after the user's keymap, written as the footer
    writes it (so a line of help text never names a key the user has remapped). Textual applies the keymap to
    the screen's active bindings, not to the node's own; a binding not active now shows its own key."""
    candidates = [active.binding for active in node.screen.active_bindings.values()]
    candidates += [binding for bindings in node._bindings.key_to_bindings.values() for binding in bindings]
    for binding in candidates:
        if binding.id == binding_id:
            return node.app.get_key_display(binding)
    raise KeyError(f"{type(node).__name__} has no binding {binding_id!r}")
