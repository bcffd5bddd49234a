"""The ``Host`` check of open mode: a defence against DNS rebinding.

Without API keys, anyone who can send a request may do everything, and the server relies on
listening only on loopback. A web page the developer visits can still reach it: its script
talks to ``http://rebind.attacker.example:8000``, whose name the attacker then points at
127.0.0.1, and the browser (same origin, as far as it knows) lets the page read the answers.
Such a request carries the attacker's name in ``Host``. So in open mode every request (HTTP
and WebSocket, every route) must name this machine: ``localhost`` (or ``*.localhost``, which
browsers resolve to loopback themselves), an IP address (a rebinding attack needs a name; an
address is what clients of ``--allow-open-network`` use), or a name listed in
``MLTRAIN_ALLOWED_HOSTS``. Anything else gets 421 with the reason. With keys configured the
check is off: a rebinding page has no key to send.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from graphql_api.responses import graphql_error_response

#: Close code for a refused WebSocket handshake where an HTTP answer cannot be sent.
POLICY_VIOLATION = 1008


#: A Host header: a name or IPv4 address, or an IPv6 address in brackets; then maybe a port.
HOST_HEADER = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::\d{1,5})?")


def host_name(header: str | None) -> str | None:
    """The name or address in a ``Host`` header (no port, no brackets), lowercased; None for
    a header that is none of these (empty, user information, an unclosed bracket)."""
    match = HOST_HEADER.fullmatch((header or "").strip().lower())
    if match is None:
        return None
    return match["v6"] or match["name"]


def is_machine_local(name: str) -> bool:
    """``localhost``, a ``*.localhost`` name, or an IP address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(name: str, allowed: Sequence[str]) -> bool:
    if is_machine_local(name):
        return True
    for pattern in allowed:
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class LocalHostsOnly:
    """Refuses requests whose ``Host`` is not this machine or an allowed name (module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Sequence[str],
        keys_required: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self.allowed = [pattern.lower() for pattern in allowed_hosts]
        #: With keys (a key stored while running turns them on), the check is off.
        self.keys_required = keys_required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.keys_required():
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host")
        name = host_name(header)
        if name is not None and host_allowed(name, self.allowed):
            await self.app(scope, receive, send)
            return
        reason = (
            f"Host {header!r} is not allowed: a server without API keys answers only requests "
            "to localhost, an IP address or a name in MLTRAIN_ALLOWED_HOSTS (a defence "
            "against DNS rebinding; see docs/security.md)."
        )
        response = graphql_error_response(421, reason, {"code": "HOST_NOT_ALLOWED", "host": header})
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            await websocket.send_denial_response(response)
        else:
            await websocket.close(
                code=POLICY_VIOLATION, reason=reason.encode()[:123].decode(errors="ignore")
            )
