"""``SharedRenders`` on its own: what is shared, and that a leaving subscriber cancels nothing
the others wait for (graphql_api/live/fanout.py)."""

from __future__ import annotations

import asyncio
import functools

from graphql_api.live.fanout import OperationKey, SharedRenders

OPERATION: OperationKey = ("subscription { x }", None, "{}", "open")
OTHER_VARIABLES: OperationKey = ("subscription { x }", None, '{"id":"1"}', "open")


def test_one_execution_per_operation_and_event() -> None:
    renders = SharedRenders()
    event, next_event = object(), object()
    calls: list[str] = []

    def execute(name: str) -> str:
        calls.append(name)
        return name

    assert [renders.render(OPERATION, event, lambda: execute("a")) for _ in range(5)] == ["a"] * 5
    assert renders.render(OTHER_VARIABLES, event, lambda: execute("b")) == "b"
    assert renders.render(OPERATION, next_event, lambda: execute("c")) == "c"
    assert calls == ["a", "b", "c"]
    assert (renders.executions, renders.shared) == (3, 4)


def test_an_evicted_execution_is_executed_again_never_confused() -> None:
    renders = SharedRenders(capacity=2)
    events = [object() for _ in range(3)]
    for i, event in enumerate(events):
        assert renders.render(OPERATION, event, functools.partial(int, i)) == i
    assert len(renders) == 2
    assert renders.render(OPERATION, events[0], lambda: "again") == "again"
    assert renders.executions == 4


async def test_subscribers_await_one_execution_and_one_leaving_cancels_nothing() -> None:
    renders = SharedRenders()
    event = object()
    release = asyncio.Event()
    runs = 0

    async def execute() -> str:
        nonlocal runs
        runs += 1
        await release.wait()
        return "result"

    async def deliver() -> str:
        result: str = await renders.render(OPERATION, event, execute)
        return result

    first = asyncio.create_task(deliver())
    others = [asyncio.create_task(deliver()) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()  # the subscriber that started the execution leaves
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*others) == ["result"] * 3
    assert runs == 1 and renders.executions == 1
    assert first.cancelled()
