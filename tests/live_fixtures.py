"""The ``live`` harness of tests/test_subscriptions.py as fixtures for the live-feed test files
(tests/test_live_*.py): one test's database with servers over it, on the module's
``server_loop`` (tests/conftest.py). Import the fixture function into a test module to use it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import BACKENDS
from tests.live_servers import ServerLoop
from tests.test_subscriptions import Live


@pytest.fixture(params=BACKENDS, name="live")
async def live_fixture(
    request: pytest.FixtureRequest, server_loop: ServerLoop
) -> AsyncIterator[Live]:
    harness = Live(server_loop, request.param)
    try:
        yield harness
    finally:
        await harness.close()
