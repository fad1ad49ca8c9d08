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
