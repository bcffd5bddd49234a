"""The ``live`` harness of tests/test_subscriptions.py as fixtures for the live-feed test files
(tests/test_live_*.py): a module's server loop, and one test's database with servers over it.
Import both fixture functions into a test module to use them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import BACKENDS
from tests.live_servers import ServerLoop
from tests.test_subscriptions import Live


@pytest.fixture(scope="module", name="server_loop")
def server_loop_fixture() -> Iterator[ServerLoop]:
    loop = ServerLoop()
    yield loop
    loop.close()


@pytest.fixture(params=BACKENDS, name="live")
async def live_fixture(
    request: pytest.FixtureRequest, server_loop: ServerLoop
) -> AsyncIterator[Live]:
    harness = Live(server_loop, request.param)
    try:
        yield harness
    finally:
        await harness.close()
