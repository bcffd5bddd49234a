"""IPv6 forms that carry an IPv4 address, or that no public host has (issue 17 item 2, SSRF):
a webhook target is judged by the IPv4 address such a form reaches, not by the IPv6 form.

- NAT64 (``64:ff9b::/96``, RFC 6052): in an IPv6-only network with a NAT64 gateway (a cloud's
  IPv6-only subnets) ``64:ff9b::a00:1`` is 10.0.0.1 and ``64:ff9b::a9fe:a9fe`` the metadata
  service; DNS64 gives such addresses for IPv4-only names, so a public IPv4 in it is taken;
- 6to4 (``2002::/16``): the router it names is the IPv4 address in bits 16-48;
- IPv4-compatible (``::a.b.c.d``, deprecated), IPv4-translated (``::ffff:0:a.b.c.d``), the
  local-use translation prefix (``64:ff9b:1::/48``, RFC 8215) and the old site-local range
  (``fec0::/10``): no public host is there; Python's ``is_global`` calls them global, but
  ``ipaddress`` lists them as reserved or site-local, which the docs say are refused.
"""

from __future__ import annotations

import pytest

from graphql_api.storage.mongo import MongoStorage
from graphql_api.webhooks.targets import TargetRefused, resolve_target
from tests.test_webhooks_api import refused_as_private

REFUSED = [
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a00:1]/hook",  # 10.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # 169.254.169.254
    "http://[64:ff9b::c0a8:10a]/hook",  # 192.168.1.10
    "http://[64:ff9b:1::a00:1]/hook",  # local-use translation prefix
    "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
    "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
    "http://[::7f00:1]/hook",  # IPv4-compatible 127.0.0.1
    "http://[::a00:1]/hook",  # IPv4-compatible 10.0.0.1
    "http://[::ffff:0:7f00:1]/hook",  # IPv4-translated 127.0.0.1
    "http://[fec0::1]/hook",  # site-local
    "http://[5f00::1]/hook",  # reserved (unassigned)
]

TAKEN = [
    ("http://[64:ff9b::5db8:d70e]/hook", "64:ff9b::5db8:d70e"),  # NAT64 of 93.184.215.14
    ("http://[2002:5db8:d70e::1]/hook", "2002:5db8:d70e::1"),  # 6to4 of 93.184.215.14
    ("http://[2606:4700::1111]/hook", "2606:4700::1111"),  # plain global IPv6
]


@pytest.mark.parametrize("url", REFUSED)
async def test_ipv6_forms_of_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused, match="not a public address"):
        await resolve_target(url, allow_private=False)
    # The setting still lifts the check.
    assert await resolve_target(url, allow_private=True)


@pytest.mark.parametrize(("url", "address"), TAKEN)
async def test_ipv6_forms_of_public_addresses_are_taken(url: str, address: str) -> None:
    assert [str(a) for a in await resolve_target(url, allow_private=False)] == [address]


@pytest.mark.parametrize("url", REFUSED[:3] + REFUSED[5:6] + REFUSED[8:9])
async def test_create_webhook_refuses_them_and_stores_nothing(
    storage: MongoStorage, url: str
) -> None:
    await refused_as_private(storage, url)
