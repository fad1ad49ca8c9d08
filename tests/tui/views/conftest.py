"""Fixtures of the view tests; the harness (fake data source, host app) is in harness.py."""

from __future__ import annotations

import pytest

from views.harness import FakeSource


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def moe_source() -> FakeSource:
    """Answers recorded from the shipped MoE demo (record_moe_data.py)."""
    return FakeSource("moe")
