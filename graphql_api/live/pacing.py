"""Deliveries take turns, so that fan-out cannot crowd requests out of the event loop.

Every delivery (executing a subscription's selection for one event and sending the frame) is
CPU work on the one event loop that also serves queries and mutations. Left alone, one event
wakes every subscriber at once: 1,000 ready tasks, each ~0.5 ms, and every ``await`` of a
mutation waits behind all of them (measured: mutation round trips of 47 s under 1,000
subscribers at 20 changes/s, bench/README.md). A ``DeliveryGate`` admits ``slots`` deliveries at
a time; the others wait off the ready queue, so a request's next step waits for at most
``slots`` deliveries. A delivery holds its slot from the moment its event is handed out until
its task next yields to the loop (the execution and the send run in that one step) or asks for
its next event, whichever comes first: a send that waits for a full socket releases the slot,
so a stalled client never holds up the others. Waiters are served in order (fair), and a
stream always yields to the loop before taking a slot again, so each turn of the loop runs at
most ``slots`` deliveries next to whatever requests are ready.

The feed uses 8 slots. Measured with ``bench.subscriptions --load`` (300 subscribers to all
jobs, 30 changes/s, bench/README.md): 1 slot held requests to the fewest deliveries per step
but cut fan-out throughput about six-fold (each hand-over of the slot costs a turn of the loop
with hundreds of sockets in it); 8 slots deliver more than no gate at all, and a request step
waits for at most 8 deliveries (~3 ms) instead of all of them.

What cannot be delivered in time backs up in the subscribers' buffers, where the lag deadline
(``subscriber.Subscriber``) sheds it with the cursor to resume from.
"""

from __future__ import annotations

import asyncio
from collections import deque


class DeliveryGate:
    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError("a delivery gate needs at least one slot")
        self.slots = slots
        self._free = slots
        self._waiting: deque[asyncio.Future[None]] = deque()

    def ticket(self) -> Ticket:
        return Ticket(self)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _give_back(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the first waiter
                return
        self._free += 1


class Ticket:
    """One stream's right to a delivery slot, taken before each event it hands out."""

    __slots__ = ("_gate", "_release")

    def __init__(self, gate: DeliveryGate) -> None:
        self._gate = gate
        #: The scheduled release of a held slot (it runs on the loop's next turn).
        self._release: asyncio.Handle | None = None

    @property
    def held(self) -> bool:
        return self._release is not None

    async def take(self) -> None:
        """Give back the slot of the previous delivery (if still held), then wait for one."""
        self.release()
        gate = self._gate
        if gate._free > 0 and not gate._waiting:
            gate._free -= 1
            # A free slot still yields once: a stream with a full buffer must not deliver
            # event after event without letting anything else run.
            try:
                await asyncio.sleep(0)
            except BaseException:
                gate._give_back()
                raise
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            gate._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    gate._give_back()  # the slot was ours already: pass it on
                raise
        # Runs after this task's current step: once it suspends (a send waiting for the socket,
        # or simply done), the slot is free for the next delivery.
        self._release = asyncio.get_running_loop().call_soon(self.release)

    def release(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None
            self._gate._give_back()
