"""The cores the use-case tests run on: the shared test catalog, and the workflow catalog (steps, break-glass, extensions)."""

from __future__ import annotations

import pytest

from grants.catalog import parse_catalog
from tests.catalogs import make_catalog
from tests.fakes import Core, bootstrap
from tests.unit.usecases.worlds import Directory, data


@pytest.fixture
def core() -> Core:
    return bootstrap(make_catalog())


@pytest.fixture
def w() -> Core:
    return bootstrap(parse_catalog(data()), directory=Directory())
