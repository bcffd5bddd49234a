"""Posting one delivery: to an address checked at send time, bounded in time and memory.

The URL's host is resolved and checked (``targets.resolve_target``) for every attempt, and
the connection is made to the checked address itself, with the URL's host as ``Host`` and as
the TLS server name (certificates are verified against it): a name that resolves to a public
address at the check and to a private one a moment later (DNS rebinding) is never connected
to the second. Redirects are not followed (a 3xx is a failure): a redirect could point
anywhere. The answer's body is never read, only its status line and headers, so a receiver
cannot make the server hold a large answer; the whole attempt is bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from urllib.parse import urlsplit, urlunsplit

import httpx

from graphql_api.webhooks.targets import resolve_target


class HttpSender:
    def __init__(self, *, allow_private: bool, timeout: float) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        # One pool for every webhook: keep-alive to receivers; bounded in connections.
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            trust_env=False,  # no proxy from the environment: the checked address is the peer
        )

    async def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """The answer's status code; raises on no answer (refused, timed out, URL refused)."""
        async with asyncio.timeout(self._timeout):
            addresses = await resolve_target(url, allow_private=self._allow_private)
            parts = urlsplit(url)
            host = parts.hostname or ""
            address = addresses[0]
            shown = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
            netloc = shown if parts.port is None else f"{shown}:{parts.port}"
            direct = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
            host_header = host if parts.port is None else f"{host}:{parts.port}"
            request = self._client.build_request(
                "POST",
                direct,
                headers={**headers, "host": host_header, "user-agent": "mltrain-webhooks"},
                content=body,
                extensions={"sni_hostname": host},
            )
            response = await self._client.send(request, stream=True)
            await response.aclose()  # the body is never read
            return response.status_code

    async def aclose(self) -> None:
        await self._client.aclose()
