"""Idle members of a delivery group are records, not tasks (issue 12 item 6: memory per idle
subscriber; graphql_api/live/direct.py, ``subscriber.Parked``).

An idle subscription whose frames its group writes ends its operation's task and chain of
generators and stays in the feed as a record; it is restarted, where its subscriber is, when
it must deliver an event itself (its group has no member with a task to lead, its socket cannot
be written to, ...). Counted over real WebSockets: the tasks the server keeps, the feed's
subscribers and groups; and what every client receives must not change.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import GraphQLHTTP, Server, SubscriptionEnded, WSClient, eventually
from tests.test_live_fanout import subscribed
from tests.test_subscriptions import JOB_UPDATES, START, Live


async def tasks(live: Live) -> int:
    return await live.loop.peek(lambda: len(asyncio.all_tasks()))


async def settle_to(live: Live, server: Server, baseline: int, subscribers: int) -> None:
    """Until the feed has ``subscribers`` and the server one task per connection plus one for
    the group (its other members parked)."""

    async def settled() -> bool:
        count = await live.loop.peek(lambda: server.feed.subscriber_count)
        return count == subscribers and await tasks(live) - baseline == subscribers + 1

    await eventually(settled, what=f"{subscribers} subscribers, one operation task in all")


async def parked_group(
    live: Live, count: int
) -> tuple[Server, GraphQLHTTP, str, int, list[tuple[WSClient, str]]]:
    """A server with one job and ``count`` subscribers of its updates, settled (one operation
    task in all): the server, its HTTP client, the job, the task baseline and the members."""
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    baseline = await tasks(live)
    members = await subscribed(live, server, count, JOB_UPDATES, jobId=job_id)
    await settle_to(live, server, baseline, count)
    return server, http, job_id, baseline, members


@pytest.mark.parametrize(("count", "seed"), [(3, 1), (6, 2), (6, 3)])
async def test_every_member_gets_every_event_while_members_leave_in_any_order(
    live: Live, count: int, seed: int
) -> None:
    server, http, job_id, _, members = await parked_group(live, count)

    await mutate(http, START, id=job_id)
    for client, op in members:
        assert (await client.next(op))["trainingJobUpdates"]["status"] == "RUNNING"

    # Members leave in a random order (the one with a task among them, at some point), by
    # completing the subscription or closing the socket; the rest keep getting every event.
    leaving = random.Random(seed).sample(members, count - 1)
    for step, (client, op) in enumerate(leaving):
        if step % 2:
            await client.unsubscribe(op)
        else:
            await client.close()
        members.remove((client, op))
        await report(http, job_id, step)
        for other, other_op in members:
            got = await other.next(other_op)
            assert got["trainingJobUpdates"]["job"]["metrics"] == {"step": step}
        assert await client.nothing_more(op, wait=0.01)

    async def one_left() -> bool:
        return await live.loop.peek(lambda: server.feed.subscriber_count) == 1

    await eventually(one_left, what="the feed to forget every member that left")
    ((client, op),) = members
    await client.close()

    async def none_left() -> bool:
        feed = server.feed
        return await live.loop.peek(lambda: (feed.subscriber_count, len(feed.groups))) == (0, 0)

    await eventually(none_left, what="no subscriber and no group left in the feed")


async def test_parked_members_idle_again_after_a_burst(live: Live) -> None:
    # Changes back to back: members are busy, some restarted to lead or to catch up; once the
    # burst is delivered, all but one are records again, and each got every event in order.
    server, http, job_id, baseline, members = await parked_group(live, 5)

    await mutate(http, START, id=job_id)
    for step in range(12):
        await report(http, job_id, step)
    for client, op in members:
        got = [u["trainingJobUpdates"] for u in await client.take(op, 13)]
        assert [u["job"]["metrics"].get("step") for u in got] == [None, *range(12)]
        assert len({u["cursor"] for u in got}) == 13
    await settle_to(live, server, baseline, 5)


async def test_a_parked_subscription_completed_then_subscribed_again_on_its_socket(
    live: Live,
) -> None:
    # A new operation on the same socket: it gets every event once, nothing of the old record.
    server, http, job_id, baseline, members = await parked_group(live, 3)
    client, op = members[-1]
    await client.unsubscribe(op)

    async def two() -> bool:
        return await live.loop.peek(lambda: server.feed.subscriber_count) == 2

    await eventually(two, what="the completed subscription out of the feed")
    again = await client.subscribe(JOB_UPDATES, jobId=job_id)
    members[-1] = (client, again)
    await settle_to(live, server, baseline, 3)
    await mutate(http, START, id=job_id)
    for member, member_op in members:
        assert (await member.next(member_op))["trainingJobUpdates"]["status"] == "RUNNING"
        assert await member.nothing_more(member_op, wait=0.01)


async def test_parked_members_are_told_the_server_is_stopping_with_their_cursor(
    live: Live,
) -> None:
    server, http, job_id, baseline, members = await parked_group(live, 4)
    await mutate(http, START, id=job_id)
    cursors = {(await client.next(op))["trainingJobUpdates"]["cursor"] for client, op in members}
    (cursor,) = cursors
    await settle_to(live, server, baseline, 4)

    await live.loop.call(server.feed.stop())
    for client, op in members:
        with pytest.raises(SubscriptionEnded) as ended:
            await client.next(op)
        (error,) = ended.value.errors
        assert error["extensions"] == {"code": "SERVER_SHUTTING_DOWN", "resumeAfter": cursor}


@pytest.mark.parametrize("count", [2, 5])
async def test_events_one_at_a_time_restart_no_parked_member(live: Live, count: int) -> None:
    # The group's member with a task is idle when each event comes: it leads, every parked
    # member's frame is written, and none is restarted (a restart is a whole operation's set-up).
    server, http, job_id, _, members = await parked_group(live, count)
    stats = server.feed.groups.stats
    before = await live.loop.peek(lambda: (stats.written, stats.restarted))

    await mutate(http, START, id=job_id)
    for client, op in members:
        await client.next(op)
    for step in range(4):
        await report(http, job_id, step)
        for client, op in members:
            got = await client.next(op)
            assert got["trainingJobUpdates"]["job"]["metrics"] == {"step": step}
    written, restarted = await live.loop.peek(lambda: (stats.written, stats.restarted))
    assert (written - before[0], restarted - before[1]) == (5 * (count - 1), 0)
