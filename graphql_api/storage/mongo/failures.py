"""Every storage operation bounded in time, and the driver's failures kept inside.

A store method runs under ``pymongo.timeout(bound)`` (and, as a backstop, an
``asyncio.timeout`` a second longer): PyMongo's client-side operation timeout (CSOT), which
bounds server selection, connecting, each command and the wait for a pooled
connection, and sets the deadline once for the whole method (all its round trips). PyMongo's
async client keeps the deadline in a context variable of the calling task, so it also covers
the time a call waits for a pooled connection: once past it, a queued call fails at once
instead of sending a write the client has stopped waiting for.

A failure to reach the database becomes ``DatabaseUnavailable`` with a short reason; every
other driver error (a unique index refusal, which stores handle themselves) passes unchanged.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import ParamSpec, Protocol, TypeVar

import pymongo
from pymongo.errors import (
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from graphql_api.storage.base import DatabaseUnavailable

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)


#: Server error codes that mean the URI's credentials do not let us in (MongoDB's codes).
REFUSED_CREDENTIALS = {
    18: "authentication failed (the user or password in the URI)",
    13: "not authorized (the URI's user lacks the rights)",
}


#: How a refused connection reads in a server selection error: PyMongo's async client words
#: it "[Errno 111] Connect call failed" (asyncio's), its synchronous one "Connection refused".
_REFUSED = f"[Errno {errno.ECONNREFUSED}] "

#: Seconds past the bound after which the caller stops waiting for the driver regardless.
BACKSTOP_GRACE = 1.0


class Bounded(Protocol):
    #: Seconds one storage method may take; None: unbounded (the in-memory mock).
    timeout: float | None


def unavailable(error: PyMongoError, timeout: float | None) -> DatabaseUnavailable | None:
    """The ``DatabaseUnavailable`` that ``error`` means, or None if it means something else."""
    detail = str(error)
    if isinstance(error, ServerSelectionTimeoutError):
        if _REFUSED in detail or "Connection refused" in detail:
            reason = "connection refused"
        elif "timed out" in detail or error.timeout:
            reason = "no server answered" + (f" within {timeout:g} s" if timeout else "")
        else:
            # The first server's error, without the topology dump that follows it.
            reason = re.split(r" \(configured timeouts|, Timeout: ", detail)[0]
            reason = re.sub(r"^[^\s]+:\d+: ", "", reason) or "no server reachable"
    elif error.timeout:
        reason = "no answer" + (f" within {timeout:g} s" if timeout else " in time")
    elif isinstance(error, ConnectionFailure):
        reason = "connection lost"
    elif isinstance(error, OperationFailure) and error.code in REFUSED_CREDENTIALS:
        reason = REFUSED_CREDENTIALS[error.code]
    else:
        return None
    return DatabaseUnavailable(reason, detail)


def bounded(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run a store method under the store's ``timeout``; driver outages as DatabaseUnavailable."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        store: Bounded = args[0]  # type: ignore[assignment]  # a method: args[0] is self
        task = asyncio.current_task()
        cancels = 0 if task is None else task.cancelling()
        try:
            # The driver's deadline ends the work and says why (connection refused, no
            # answer). While connections are refused its server selection retries in ~0.5 s
            # steps, so it answers up to ~0.5 s late (measured 3.4-3.5 s for a 3 s bound);
            # the loop's deadline, a second later, only guards against a driver that hangs.
            backstop = None if store.timeout is None else store.timeout + BACKSTOP_GRACE
            async with asyncio.timeout(backstop):
                with pymongo.timeout(store.timeout):
                    result = await method(*args, **kwargs)
            _deliver_swallowed_cancel(task, cancels)
            return result
        except TimeoutError:
            _deliver_swallowed_cancel(task, cancels)
            raise DatabaseUnavailable(
                f"no answer within {store.timeout:g} s", "the storage operation's deadline passed"
            ) from None
        except PyMongoError as error:
            _deliver_swallowed_cancel(task, cancels)
            translated = unavailable(error, store.timeout)
            if translated is None:
                raise
            raise translated from error
        except Exception:
            _deliver_swallowed_cancel(task, cancels)
            raise

    return call


def _deliver_swallowed_cancel(task: asyncio.Task[object] | None, cancels: int) -> None:
    """Raise the CancelledError of a cancel requested during a driver call that the call
    swallowed. On Python 3.11, ``asyncio.wait_for`` returns its result instead of raising when
    the awaited work finishes as the cancel arrives (CPython bpo-42130, fixed in 3.12), and
    PyMongo's async client awaits every socket write through it: measured on DocumentDB, about
    one ``find_one`` in ten cancelled mid-call returned normally. A background loop (the
    webhook dispatcher) then went on running and its ``stop()``, awaiting the cancelled task,
    never returned: the server hung at shutdown. A cancel that our own deadline raised is
    withdrawn by ``asyncio.timeout`` (``uncancel``), so only a caller's cancel counts here."""
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError


def bounded_methods(cls: C) -> C:
    """Apply ``bounded`` to every public coroutine method ``cls`` defines."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, bounded(member))
    return cls


def masked(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (for logs and start-up errors). The
    user information ends at the last ``@``: a password with an unescaped ``@`` is masked
    whole too."""
    scheme, separator, rest = uri.partition("://")
    user_info, at, host = rest.rpartition("@")
    if not separator or not at or ":" not in user_info:
        return uri
    return f"{scheme}://{user_info.split(':', 1)[0]}:***@{host}"
