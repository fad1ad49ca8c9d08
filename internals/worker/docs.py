"""The generated parts of docs/protocol.md (the operations) and docs/contracts.md (the wire types), written
from the registry and the contract types so that the docs cannot drift from the code.

`python -m internals.worker.docs` rewrites the sections between the `<!-- generated:NAME -->` and
`<!-- end:NAME -->` markers; `tests/internals/worker/test_contract_docs.py` fails when a file is stale.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from pathlib import Path
from typing import Any

from internals.errors import wire_kinds
from internals.worker import contract
from internals.worker.operations import registry, request_fields

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _type_name(t: Any) -> str:
    """A short readable type: int, str or null, list[int], object, numpy array, "module" | "parameter"."""
    import types

    import numpy as np

    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' for a in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict or t is dict:
        return f"object of {_type_name(args[1])}" if len(args) == 2 and args[1] is not typing.Any else "object"
    if t is type(None) or t is None:
        return "null"
    if t is np.ndarray:
        return "numpy array"
    if t is typing.Any:
        return "any"
    return getattr(t, "__name__", str(t))


def operations_section() -> str:
    lines = ["| operation | parameters (default) | result | model | lock | group | streams |",
             "|---|---|---|---|---|---|---|"]
    for name, op in sorted(registry().items()):
        hints = typing.get_type_hints(op.request)
        params = ", ".join(f"`{n}`: {_type_name(hints[n])}" + ("" if d is dataclasses.MISSING else f" = {d!r}")
                           for n, _, d in request_fields(op)) or "none"
        lines.append(f"| `{name}` | {params} | `{_type_name(op.result)}` | {'loads' if op.needs_model else '-'} | "
                     f"{'per step' if op.compute_lock == 'step' else 'yes' if op.compute_lock else '-'} | {op.group or '-'} | "
                     f"{'`' + _type_name(op.item) + '`' if op.streams else '-'} |")
    lines += ["", "Error kinds (`error` frames' `type`; the client raises the same class of `internals/errors.py`): "
              + ", ".join(f"`{k}`" for k, cls in sorted(wire_kinds().items()) if cls.__module__ == "internals.errors")
              + "; error classes of other packages travel by their class name (e.g. the lessons' `MissingExtraError`)."]
    return "\n".join(lines)


def contract_section() -> str:
    lines = []
    for t in contract.RESULT_TYPES:
        hints = typing.get_type_hints(t)
        optional = getattr(t, "__optional_keys__", frozenset())
        keys = ", ".join(f"`{k}`{'?' if k in optional else ''}: {_type_name(v)}" for k, v in hints.items())
        lines.append(f"- `{t.__name__}`: {keys}")
    return "\n".join(lines)


SECTIONS = {"protocol.md": {"operations": operations_section}, "contracts.md": {"wire-types": contract_section}}


def render(text: str, sections: dict[str, Any]) -> str:
    for name, make in sections.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"no <!-- generated:{name} --> ... <!-- end:{name} --> markers")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def stale_files(folder: Path = DOCS) -> list[str]:
    return [f for f, sections in SECTIONS.items() if render((folder / f).read_text(), sections) != (folder / f).read_text()]


def main() -> int:
    for f, sections in SECTIONS.items():
        path = DOCS / f
        path.write_text(render(path.read_text(), sections))
    print("updated: " + ", ".join(SECTIONS), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
