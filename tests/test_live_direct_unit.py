"""Direct delivery on its own (graphql_api/live/direct.py): which subscribers of a group are
woken for an event, what is written for the others, and when they fall back to their own path
(order, lag limit, ending) - issue 12 item 6."""

from __future__ import annotations

import asyncio

import pytest

from graphql_api.domain.events import StoredEvent
from graphql_api.live.direct import (
    DeliveryGroups,
    DirectTarget,
    FrameWriter,
    GroupKey,
    OutgoingFrame,
)
from graphql_api.live.selectors import JobSelector
from graphql_api.live.subscriber import FeedStopped, FellBehind, Subscriber
from tests.test_live_pacing import Clock, event

KEY: GroupKey = ("subscription { x }", None, "{}", "open ")


class Socket(FrameWriter):
    """A writer that records frames, or refuses them (a socket that is not writable)."""

    def __init__(self, writable: bool = True) -> None:
        super().__init__(protocol=None)
        self.writable = writable
        self.frames: list[str] = []

    def write(self, frame: OutgoingFrame) -> bool:
        if self.writable:
            self.frames.append(frame.text)
        return self.writable


def frame(operation_id: str, data: str) -> str:
    return f"{operation_id}:{data}"


class Member:
    """A subscriber of the group whose consumer waits in ``next`` (as a live one does)."""

    def __init__(
        self, groups: DeliveryGroups, clock: Clock, name: str, writable: bool = True
    ) -> None:
        self.subscriber = Subscriber(JobSelector(), 0, 100, max_lag=5.0, clock=clock)
        self.socket = Socket(writable)
        self.target = DirectTarget(self.socket, name, frame)
        self.subscriber.join_group(groups.join(KEY), self.target, groups.stats)
        self.target.subscriber = self.subscriber
        self.waiting: asyncio.Task[tuple[StoredEvent, float]] = asyncio.ensure_future(
            self.subscriber.next()
        )

    async def woken(self) -> bool:
        for _ in range(3):  # a woken task runs within a turn or two of the loop
            await asyncio.sleep(0)
        return self.waiting.done()


async def idle(*members: Member) -> None:
    for _ in range(3):  # their consumers reach ``next``'s wait
        await asyncio.sleep(0)
    assert not any(m.waiting.done() for m in members)


async def idle_leader_and_follower() -> tuple[DeliveryGroups, Clock, Member, Member]:
    """A group of two, both waiting: the first joined leads."""
    groups, clock = DeliveryGroups(), Clock()
    leader, follower = Member(groups, clock, "lead"), Member(groups, clock, "follow")
    await idle(leader, follower)
    return groups, clock, leader, follower


def offer_to(*members: Member, seq: int) -> None:
    """The feed offers event ``seq`` to each member, as it does to every subscriber."""
    for member in members:
        member.subscriber.offer(event(seq))


async def test_one_member_is_woken_per_event_and_the_others_get_its_frame() -> None:
    groups, clock = DeliveryGroups(), Clock()
    leader, *followers = [Member(groups, clock, f"id{i}") for i in range(4)]
    await idle(leader, *followers)

    for member in [leader, *followers]:
        member.subscriber.offer(event(1))

    assert await leader.woken()
    assert not any([await f.woken() for f in followers])
    handed, offered_at = await leader.waiting
    leader.subscriber.handed_out(handed, offered_at)
    leader.subscriber.sent_plain('{"x":1}')

    assert [f.socket.frames for f in followers] == [[f'id{i}:{{"x":1}}'] for i in (1, 2, 3)]
    assert [f.subscriber.delivered_seq for f in followers] == [1, 1, 1]
    assert not any([await f.woken() for f in followers])  # still waiting for the next event
    assert (groups.stats.written, groups.stats.fell_back) == (3, 0)


@pytest.mark.parametrize("cause", ["not writable", "no plain result", "leader left"])
async def test_a_follower_not_written_to_delivers_the_event_itself(cause: str) -> None:
    groups, clock = DeliveryGroups(), Clock()
    leader = Member(groups, clock, "lead")
    follower = Member(groups, clock, "follow", writable=cause != "not writable")
    await idle(leader, follower)
    offer_to(leader, follower, seq=1)
    handed, offered_at = await leader.waiting
    leader.subscriber.handed_out(handed, offered_at)

    if cause == "not writable":
        leader.subscriber.sent_plain('{"x":1}')
    elif cause == "no plain result":  # e.g. an error: each subscriber's own result
        leader.subscriber.moved_on(1)
    else:
        leader.subscriber.leave_group()

    assert await follower.woken()
    handed, _ = await follower.waiting
    assert handed.seq == 1
    assert follower.socket.frames == []
    assert groups.stats.fell_back == 1


async def test_a_later_event_waits_behind_the_deferred_one() -> None:
    _groups, _clock, leader, follower = await idle_leader_and_follower()
    for seq in (1, 2):
        leader.subscriber.offer(event(seq))
        follower.subscriber.offer(event(seq))
    assert not await follower.woken()  # event 2 did not wake it past the deferred event 1

    handed, offered_at = await leader.waiting
    leader.subscriber.handed_out(handed, offered_at)
    leader.subscriber.sent_plain('"one"')

    # 1 written; then woken for 2: no member idle when 2 came, so it leads 2 itself.
    assert follower.socket.frames == ['follow:"one"']
    assert await follower.woken()
    handed, _ = await follower.waiting
    assert handed.seq == 2


async def test_a_deferred_event_that_waited_past_the_lag_limit_sheds_the_follower() -> None:
    _groups, clock, leader, follower = await idle_leader_and_follower()
    offer_to(leader, follower, seq=1)
    clock.now += 6  # past max_lag=5
    handed, offered_at = await leader.waiting
    with pytest.raises(FellBehind):
        leader.subscriber.handed_out(handed, offered_at)
    leader.subscriber.leave_group()  # the leader's stream ends

    assert follower.socket.frames == []
    assert await follower.woken()
    handed, offered_at = await follower.waiting
    with pytest.raises(FellBehind) as shed:
        follower.subscriber.handed_out(handed, offered_at)
    assert shed.value.resume_seq == 0  # resumes before the event it never got


async def test_a_follower_that_stops_hands_its_event_out_and_gets_no_frame_after() -> None:
    _groups, _clock, leader, follower = await idle_leader_and_follower()
    offer_to(leader, follower, seq=1)
    follower.subscriber.stop()  # the server is stopping: buffered events are still handed out

    assert await follower.woken()
    handed, offered_at = await follower.waiting
    follower.subscriber.handed_out(handed, offered_at)
    leader_event, leader_offered = await leader.waiting
    leader.subscriber.handed_out(leader_event, leader_offered)
    leader.subscriber.sent_plain('"one"')

    assert follower.socket.frames == []  # it sent event 1 itself: never twice
    with pytest.raises(FeedStopped) as stopped:
        await follower.subscriber.next()
    assert stopped.value.resume_seq == 1


async def test_a_member_that_left_is_never_written_to() -> None:
    groups, _clock, leader, follower = await idle_leader_and_follower()
    offer_to(leader, follower, seq=1)
    follower.subscriber.leave_group()  # the client completed it
    follower.waiting.cancel()

    handed, offered_at = await leader.waiting
    leader.subscriber.handed_out(handed, offered_at)
    leader.subscriber.sent_plain('"one"')
    assert follower.socket.frames == []
    groups.leave(groups.join(KEY))
    assert len(groups) == 1  # the leader still in it
