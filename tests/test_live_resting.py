"""Resting members of a delivery group (graphql_api/live/direct.py ``DeliveryGroup.rest``):
parked, idle members are offered each event once, as a group, and written to in one loop,
instead of each being offered the event, deferring it and being written to on its own (half
of a delivery's CPU with 5,000 subscribers, py-spy) - issue 12 item 6.

What must not change is what every member gets: each event once, in order, its resume cursor
moving only when its frame was written; a member whose socket refuses, whose event waited too
long, whose leader sent no plain result, or that must lead, leaves the resting ones and delivers
its events itself (its operation restarted, as a parked member's is)."""

from __future__ import annotations

import asyncio
import gc
from typing import cast

import pytest

from graphql_api.domain.events import StoredEvent
from graphql_api.live.direct import DeliveryGroups, DirectTarget
from graphql_api.live.feed import ChangeFeed
from graphql_api.live.selectors import JobSelector, Selector
from graphql_api.live.subscriber import FeedStopped, FellBehind, Parked, Subscriber
from graphql_api.storage.base import EventStore
from tests.test_live_direct_unit import KEY, Member, Socket, frame, idle
from tests.test_live_pacing import Clock, event

SELECTOR: Selector = JobSelector()


class Resting:
    """A parked member: its consumer ended with ``Parked``; ``restarts`` counts restarts."""

    def __init__(
        self, groups: DeliveryGroups, clock: Clock, name: str, capacity: int = 100
    ) -> None:
        self.subscriber = Subscriber(SELECTOR, 0, capacity, max_lag=5.0, clock=clock)
        self.socket = Socket()
        self.restarts = 0
        self.target = DirectTarget(self.socket, name, frame, restart=self._restart)
        self.subscriber.join_group(groups.join(KEY), self.target, groups.stats, parkable=True)
        self.target.subscriber = self.subscriber

    def _restart(self) -> None:
        self.restarts += 1

    async def park(self) -> None:
        with pytest.raises(Parked):
            await self.subscriber.next()
        assert self.subscriber.resting


def fan_out(groups: DeliveryGroups, subscribers: list[Subscriber], seq: int, now: float) -> None:
    """What the feed does with an event: each subscriber that is not resting is offered it on
    its own, and each group with resting members once for all of them."""
    ev: StoredEvent = event(seq)
    for subscriber in subscribers:
        if not subscriber.resting:
            subscriber.offer_matching(ev, now)
    for group in list(groups.with_resting):
        group.offer_resting(ev, now)


async def group_with_resting(
    count: int, capacity: int = 100
) -> tuple[DeliveryGroups, Clock, Member, list[Resting]]:
    groups, clock = DeliveryGroups(), Clock()
    leader = Member(groups, clock, "lead")
    members = [Resting(groups, clock, f"r{i}", capacity) for i in range(count)]
    for member in members:
        await member.park()
    await idle(leader)
    return groups, clock, leader, members


def everyone(leader: Member, members: list[Resting]) -> list[Subscriber]:
    return [leader.subscriber, *(m.subscriber for m in members)]


async def lead(leader: Member, data: str, *, plain: bool = True) -> int:
    """The leader hands out its next event and sends it (a plain result, or not)."""
    handed, offered_at = await leader.waiting
    leader.subscriber.handed_out(handed, offered_at)
    if plain:
        leader.subscriber.sent_plain(data)
    leader.subscriber.moved_on(handed.seq)
    leader.waiting = asyncio.ensure_future(leader.subscriber.next())
    for _ in range(3):  # its consumer asks for the next event, as a live one soon does
        await asyncio.sleep(0)
    return handed.seq


async def test_resting_members_are_offered_an_event_once_and_written_in_one_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    groups, clock, leader, members = await group_with_resting(4)
    offered: list[int] = []
    original = Subscriber.offer_matching

    def counted(self: Subscriber, ev: StoredEvent, now: float) -> None:
        offered.append(ev.seq)
        original(self, ev, now)

    monkeypatch.setattr(Subscriber, "offer_matching", counted)
    for seq in (1, 2, 3):
        fan_out(groups, everyone(leader, members), seq, clock.now)
        assert await lead(leader, f'"{seq}"') == seq

    assert offered == [1, 2, 3]  # the leader only: the resting ones were offered as a group
    for member in members:
        assert member.socket.frames == [f'{member.target.operation_id}:"{s}"' for s in (1, 2, 3)]
        assert member.subscriber.delivered_seq == 3  # the resume cursor moved with each frame
        assert member.subscriber.resting
        assert member.restarts == 0
    assert groups.stats.written == 12


async def test_a_resting_member_whose_socket_refuses_delivers_the_event_itself() -> None:
    groups, clock, leader, members = await group_with_resting(3)
    refusing = members[1]
    refusing.socket.writable = False
    fan_out(groups, everyone(leader, members), 1, clock.now)
    await lead(leader, '"1"')

    assert refusing.restarts == 1 and not refusing.subscriber.resting
    assert refusing.socket.frames == []
    assert refusing.subscriber.delivered_seq == 0
    fan_out(groups, everyone(leader, members), 2, clock.now)
    # Its own chain (restarted) gets both events from its buffer, in order.
    handed = [(await refusing.subscriber.next())[0].seq for _ in range(2)]
    assert handed == [1, 2]
    for other in (members[0], members[2]):
        assert other.socket.frames == [f'{other.target.operation_id}:"1"']
        assert other.subscriber.resting and other.restarts == 0


async def test_without_a_plain_result_every_resting_member_delivers_the_event_itself() -> None:
    groups, clock, leader, members = await group_with_resting(3)
    fan_out(groups, everyone(leader, members), 1, clock.now)
    await lead(leader, "", plain=False)  # e.g. an error: each subscriber's own result

    for member in members:
        assert member.restarts == 1 and not member.subscriber.resting
        assert member.socket.frames == []
        assert (await member.subscriber.next())[0].seq == 1


async def test_a_leader_shed_as_too_slow_leaves_the_resting_members_to_shed_themselves() -> None:
    groups, clock, leader, members = await group_with_resting(2)
    fan_out(groups, everyone(leader, members), 1, clock.now)
    clock.now += 6  # past max_lag=5
    handed, offered_at = await leader.waiting
    with pytest.raises(FellBehind):
        leader.subscriber.handed_out(handed, offered_at)
    leader.subscriber.leave_group()  # the leader's stream ends

    for member in members:
        assert member.socket.frames == []
        assert member.restarts == 1
        ev, at = await member.subscriber.next()
        with pytest.raises(FellBehind) as shed:
            member.subscriber.handed_out(ev, at)
        assert shed.value.resume_seq == 0  # resumes before the event it never got


async def test_a_frame_for_resting_members_past_the_lag_limit_is_not_written() -> None:
    groups, clock, leader, members = await group_with_resting(2)
    fan_out(groups, everyone(leader, members), 1, clock.now)
    group = groups.join(KEY)
    group.sent(1, '"late"', groups.stats, clock.now + 6)  # written 6 s after it was offered

    for member in members:
        assert member.socket.frames == []
        assert member.restarts == 1  # its own chain: it sheds itself, with its resume cursor
        assert not member.subscriber.resting


async def test_resting_members_whose_buffer_would_overflow_fall_behind() -> None:
    groups, clock, leader, members = await group_with_resting(2, capacity=2)
    for seq in (1, 2, 3):  # the leader sends nothing: three events waiting, capacity 2
        fan_out(groups, everyone(leader, members), seq, clock.now)
    for member in members:
        assert not member.subscriber.resting
        assert member.subscriber.fell_behind


async def test_with_no_leader_one_resting_member_leads_and_the_others_get_its_frame() -> None:
    groups, clock, leader, members = await group_with_resting(3)
    leader.subscriber.leave_group()  # the member with a consumer left
    leader.waiting.cancel()
    fan_out(groups, [m.subscriber for m in members], 1, clock.now)
    for _ in range(3):
        await asyncio.sleep(0)  # the group looks for a leader once the feed is done

    first, *others = members
    assert first.restarts == 1 and not first.subscriber.resting  # restarted, to lead
    handed, offered_at = await first.subscriber.next()
    first.subscriber.handed_out(handed, offered_at)
    first.subscriber.sent_plain('"1"')
    for other in others:
        assert other.socket.frames == [f'{other.target.operation_id}:"1"']
        assert other.restarts == 0 and other.subscriber.resting


async def test_a_resting_member_that_stops_hands_out_what_it_waited_for_then_ends() -> None:
    groups, clock, leader, members = await group_with_resting(2)
    fan_out(groups, everyone(leader, members), 1, clock.now)
    stopping = members[0]
    stopping.subscriber.stop()  # the server is stopping

    assert stopping.restarts == 1 and not stopping.subscriber.resting
    ev, at = await stopping.subscriber.next()
    stopping.subscriber.handed_out(ev, at)
    assert ev.seq == 1
    with pytest.raises(FeedStopped) as stopped:
        await stopping.subscriber.next()
    assert stopped.value.resume_seq == 1
    await lead(leader, '"1"')
    assert stopping.socket.frames == []  # never twice
    assert members[1].socket.frames == [f'{members[1].target.operation_id}:"1"']


async def test_a_resting_member_that_left_is_never_written_to_and_the_group_empties() -> None:
    groups, clock, leader, members = await group_with_resting(2)
    for member in members:
        member.subscriber.leave_group()
    assert not groups.with_resting
    fan_out(groups, everyone(leader, []), 1, clock.now)
    await lead(leader, '"1"')
    assert all(member.socket.frames == [] for member in members)


async def test_when_every_resting_member_refuses_each_delivers_the_event_itself() -> None:
    # The last one to leave empties the group's waiting events: nothing may be left to pop
    # (a leader's send raised IndexError here, ending its subscription).
    groups, clock, leader, members = await group_with_resting(2)
    for member in members:
        member.socket.writable = False
    fan_out(groups, everyone(leader, members), 1, clock.now)
    await lead(leader, '"1"')

    assert not groups.with_resting
    for member in members:
        assert member.restarts == 1
        assert (await member.subscriber.next())[0].seq == 1
    assert leader.socket.frames == []  # (the leader sent its own frame by the ordinary path)


def test_equal_selectors_are_one_object_and_none_is_kept_once_unused() -> None:
    # What lets resting members share their group's selector and the feed evaluate each
    # distinct one once per event; the table must not keep every job ever watched.
    feed = ChangeFeed(cast(EventStore, object()))
    first = feed._intern(JobSelector("job-1"))
    assert feed._intern(JobSelector("job-1")) is first
    other = feed._intern(JobSelector("job-2"))
    assert other is not first and other == JobSelector("job-2")
    del first, other
    gc.collect()
    assert len(feed._selectors) == 0


async def test_a_leader_whose_operation_is_gone_settles_the_event_for_the_others() -> None:
    # Parked members that do not rest (their selectors are not the group's object) and no
    # member with a chain: the first waiting one is restarted to lead, but its operation is
    # gone (the client completed it meanwhile), so its restart drops it from the group at once,
    # which settles the event: the others deliver it themselves, nothing is lost.
    groups, clock = DeliveryGroups(), Clock()
    groups.join(KEY).selector = JobSelector()  # another object: none of them rests
    keeper = Member(groups, clock, "keeper")  # lets the others park
    members = [Resting(groups, clock, f"p{i}") for i in range(3)]
    await idle(keeper)
    for member in members:
        with pytest.raises(Parked):
            await member.subscriber.next()
        assert not member.subscriber.resting
    keeper.subscriber.leave_group()
    keeper.waiting.cancel()
    first = members[0]

    def gone() -> None:  # its operation is no longer there: the handler drops the record
        first.subscriber.leave_group()

    first.target.restart = gone
    for member in members:
        member.subscriber.offer(event(1))
    for _ in range(3):
        await asyncio.sleep(0)  # the group looks for a leader once the feed is done

    for other in members[1:]:
        assert other.restarts == 1  # released: it delivers the event itself
        assert (await other.subscriber.next())[0].seq == 1
