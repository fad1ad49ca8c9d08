"""docs/protocol.md and docs/contracts.md are checked against the registry and the contract types."""

from __future__ import annotations

import typing

from internals.worker import contract
from internals.worker.docs import DOCS, SECTIONS, render, stale_files
from internals.worker.operations import registry, request_fields


def test_generated_doc_sections_are_up_to_date():
    assert stale_files() == [], "run: python -m internals.worker.docs"


def test_every_operation_parameter_and_result_key_is_in_the_docs():
    protocol = (DOCS / "protocol.md").read_text()
    contracts = (DOCS / "contracts.md").read_text()
    for name, op in registry().items():
        assert f"`{name}`" in protocol, name
        for field, _, _ in request_fields(op):
            assert f"`{field}`" in protocol, (name, field)
    for t in contract.RESULT_TYPES:
        assert f"`{t.__name__}`" in contracts, t.__name__
        for key in typing.get_type_hints(t):
            assert f"`{key}`" in contracts, (t.__name__, key)


def sections_of(name: str) -> list[str]:
    return list(SECTIONS[name])


def test_a_stale_section_is_detected(tmp_path):
    for name in SECTIONS:
        text = (DOCS / name).read_text()
        for section in sections_of(name):  # an operation or a key that the code no longer has
            text = text.replace(f"<!-- end:{section} -->", f"- `removed_key`: int\n<!-- end:{section} -->")
        (tmp_path / name).write_text(text)
    assert sorted(stale_files(tmp_path)) == sorted(SECTIONS)
    for name, sections in SECTIONS.items():
        assert render((tmp_path / name).read_text(), sections) == (DOCS / name).read_text()
