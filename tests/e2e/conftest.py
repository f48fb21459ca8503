"""Fixtures of the pull end-to-end tests; each module brings its own `emulator`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_emulator.customer_db import CustomerDatabase
from local_emulator.emulator import Emulator
from tests.support.pull_cloud import Cloud


@pytest.fixture
def cloud(emulator: Emulator) -> Cloud:
    """A fresh tenant per test: each test's records are its own."""
    return Cloud(emulator)


@pytest.fixture
def customer(emulator: Emulator, request: pytest.FixtureRequest) -> Iterator[CustomerDatabase]:
    admin_url = emulator.endpoints.env()["DATABASE_URL"]
    name = "cust_" + request.node.name[5:30].lower().replace("[", "_").replace("]", "")
    db = CustomerDatabase.create(admin_url, name)
    try:
        yield db
    finally:
        db.drop()
