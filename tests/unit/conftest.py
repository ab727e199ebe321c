"""Unit tests run with nothing installed: asking for OpenBao, PostgreSQL or a running bot here is a mistake."""

from __future__ import annotations

import pytest


def _refuse(what: str) -> None:
    pytest.fail(f"a unit test asked for {what}: move it to tests/integration or tests/e2e")


@pytest.fixture
def openbao() -> None:
    _refuse("OpenBao")


@pytest.fixture
def db_url() -> None:
    _refuse("a database server")


@pytest.fixture
def world() -> None:
    _refuse("a running bot")
