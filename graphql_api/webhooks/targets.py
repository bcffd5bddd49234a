"""Which webhook URLs the server may call: never one that reaches into its own network.

A webhook URL is chosen by a client, and the server calls it from inside the deployment, so a
URL naming a loopback, private, link-local (cloud metadata: 169.254.169.254), multicast,
reserved or unspecified address would let a client make the server call what only it can
reach (SSRF). The host is resolved and *every* address it resolves to is checked, not the
name: ``localhost``, a name in a private zone, or ``127.0.0.1.nip.io`` all resolve to such
addresses. IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are checked as the IPv4 address
they carry. ``allow_private`` lifts the address check (a receiver on the same host or
network, and the tests; ``MLTRAIN_WEBHOOK_ALLOW_PRIVATE`` is to set it once webhooks are
served).

A name can resolve differently later (DNS rebinding): the delivery must connect to an address
checked here, at delivery time, not resolve the name again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL may not be called; the message says why (safe to show the client).
    ``not_public``: refused for the address it resolves to (not for its form)."""

    def __init__(self, message: str, *, not_public: bool = False) -> None:
        super().__init__(message)
        self.not_public = not_public


#: NAT64's well-known prefix (RFC 6052): behind a NAT64 gateway ``64:ff9b::a.b.c.d`` is the
#: IPv4 address a.b.c.d, private ones included (a cloud's IPv6-only subnets reach their VPC's
#: 10/8 this way); DNS64 answers such addresses for IPv4-only names, so it is judged by that
#: IPv4 address rather than refused.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def public(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet: what ``is_global`` says, for the IPv4
    address an IPv4-mapped, NAT64 or 6to4 one reaches; and never a reserved or site-local
    IPv6 address, which ``is_global`` (Python 3.11) takes: IPv4-compatible ``::a.b.c.d`` and
    ``::ffff:0:a.b.c.d`` (in ``::/8``), the local-use ``64:ff9b:1::/48``, ``fec0::/10``."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif address.is_reserved or address.is_site_local:
            return False
    return address.is_global and not address.is_multicast


async def resolve_target(url: str, *, allow_private: bool) -> list[IPAddress]:
    """The addresses a delivery to ``url`` may connect to; TargetRefused if none may.

    Only ``http`` and ``https`` URLs with a host and no credentials are taken. Every address
    the host resolves to must be public unless ``allow_private``: one private address among
    public ones is refused too, since a connection may pick any of them."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("the URL must be http or https")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL must not carry credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise TargetRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("the URL's port is not a number from 0 to 65535") from None
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise TargetRefused(f"the host {host!r} does not resolve") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not allow_private:
        refused = [a for a in addresses if not public(a)]
        if refused:
            raise TargetRefused(
                f"the host {host!r} resolves to {refused[0]}, which is not a public address "
                "(loopback, private, link-local and reserved ranges are refused)",
                not_public=True,
            )
    return addresses
