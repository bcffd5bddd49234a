"""Webhook signatures, verified with the Standard Webhooks reference library (PyPI
``standardwebhooks``), which is what a receiver would use; and the URL check that keeps
webhooks out of the server's own network."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from graphql_api.webhooks.signing import SECRET_PREFIX, headers, new_secret
from graphql_api.webhooks.targets import TargetRefused, resolve_target

BODY = json.dumps({"type": "TrainingJob.COMPLETED", "data": {"jobId": "j-1"}}).encode()


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith(SECRET_PREFIX)
        assert len(base64.b64decode(secret[len(SECRET_PREFIX) :])) == 32


@pytest.mark.parametrize("body", [BODY, b"{}", '{"name": "caf\u00e9 \u2603"}'.encode()])
def test_the_reference_library_verifies_a_signed_delivery(body: bytes) -> None:
    secret = new_secret()
    sent = headers(secret, "msg_01", int(time.time()), body)
    assert Webhook(secret).verify(body, sent) == json.loads(body)


@pytest.mark.parametrize(
    "tamper",
    ["body", "id", "timestamp", "secret"],
)
def test_a_changed_body_id_timestamp_or_secret_fails_verification(tamper: str) -> None:
    secret = new_secret()
    now = int(time.time())
    sent = headers(secret, "msg_01", now, BODY)
    body = BODY
    if tamper == "body":
        body = BODY.replace(b"COMPLETED", b"FAILED")
    elif tamper == "id":
        sent["webhook-id"] = "msg_02"
    elif tamper == "timestamp":
        sent["webhook-timestamp"] = str(now - 1)
    else:
        secret = new_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, sent)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fc00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
        "http://2130706433/hook",
    ],
)
async def test_targets_in_private_loopback_and_link_local_ranges_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused, match="not a public address"):
        await resolve_target(url, allow_private=False)


async def test_private_targets_are_allowed_when_the_setting_says_so() -> None:
    addresses = await resolve_target("http://127.0.0.1:9000/hook", allow_private=True)
    assert [str(a) for a in addresses] == ["127.0.0.1"]


async def test_a_public_address_is_taken() -> None:
    addresses = await resolve_target("https://93.184.215.14/hook", allow_private=False)
    assert [str(a) for a in addresses] == ["93.184.215.14"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://93.184.215.14/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("https://user:pw@93.184.215.14/x", "credentials"),
        ("https:///x", "no host"),
        ("https://93.184.215.14:99999/x", "port"),
    ],
)
async def test_urls_that_are_not_plain_http_targets_are_refused(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason):
        await resolve_target(url, allow_private=True)
