"""API keys as the operator handles them: creating, configuring, loading; safe-by-default
serving."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from graphql_api.auth.exposure import is_loopback
from graphql_api.auth.keys import KeyConfigError, KeyRing, bearer_secret, digest_of, generate
from graphql_api.auth.roles import Role
from tests.live_servers import MLTRAIN, ROOT, serving


def test_a_generated_key_verifies_and_only_its_digest_is_kept() -> None:
    secret, key = generate("trainer-7", Role.WORKER)
    assert secret.startswith("mlt_") and len(secret) >= 40
    assert secret not in key.entry() and key.digest == digest_of(secret)
    ring = KeyRing([key])
    assert ring.verify(secret) == key
    assert ring.verify(secret + "x") is None and ring.verify(None) is None
    assert ring.verify("") is None


def test_keys_load_from_the_environment_format_and_from_files(tmp_path: Path) -> None:
    _, a = generate("a", Role.VIEWER)
    _, b = generate("b", Role.ADMIN)
    _, c = generate("c", Role.OPERATOR)
    lines = tmp_path / "keys.txt"
    lines.write_text(f"# operators\n{c.entry()}  # the CI\n\n")
    ring = KeyRing.load(f"{a.entry()}, {b.entry()}", lines)
    assert [(k.name, k.role) for k in ring.keys] == [
        ("a", Role.VIEWER),
        ("b", Role.ADMIN),
        ("c", Role.OPERATOR),
    ]
    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps([{"name": "a", "role": "viewer", "sha256": a.digest}]))
    assert KeyRing.load(None, as_json).keys == (a,)


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        ("a:viewer", "expected name:role:sha256hex"),
        ("a:boss:" + "0" * 64, "unknown role"),
        ("a:viewer:mlt_secret", "never the secret itself"),
        ("bad name:viewer:" + "0" * 64, "must be 1-64"),
        (f"a:viewer:{'0' * 64},a:admin:{'1' * 64}", "unique"),
        (f"a:viewer:{'0' * 64},b:admin:{'0' * 64}", "same secret"),
    ],
)
def test_bad_key_configuration_is_refused_clearly(entries: str, complaint: str) -> None:
    with pytest.raises(KeyConfigError, match=complaint):
        KeyRing.load(entries)


def test_bearer_header_parsing() -> None:
    assert bearer_secret("Bearer abc") == "abc"
    assert bearer_secret("bearer   abc ") == "abc"
    assert bearer_secret("Basic abc") is None
    assert bearer_secret("Bearer") is None and bearer_secret(None) is None


def test_loopback_detection() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "example.com", ""]))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    return {**env, **extra}


def test_keys_create_prints_the_secret_once_and_the_entry() -> None:
    out = subprocess.run(
        [*MLTRAIN, "keys", "create", "--name", "ci", "--role", "operator"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    secret = next(line.strip() for line in out.splitlines() if line.strip().startswith("mlt_"))
    entry = next(line.strip() for line in out.splitlines() if line.strip().startswith("ci:"))
    assert KeyRing.load(entry).verify(secret) is not None
    refused = subprocess.run(
        [*MLTRAIN, "keys", "create", "--name", "ci", "--role", "root"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "unknown role" in refused.stderr


def test_serve_refuses_an_open_non_loopback_bind() -> None:
    refused = subprocess.run(
        [*MLTRAIN, "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in refused.stderr
    assert "--allow-open-network" in refused.stderr


def test_serve_refuses_bad_key_configuration() -> None:
    refused = subprocess.run(
        [*MLTRAIN, "serve"],
        cwd=ROOT,
        env=clean_env(MLTRAIN_API_KEYS="x:viewer:nothex"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "never the secret itself" in refused.stderr


def test_serve_says_whether_authentication_is_on() -> None:
    with serving() as (_, log):
        assert "authentication is OFF" in log.read_text()


def test_serve_with_keys_requires_them() -> None:
    import httpx

    secret, key = generate("ops", Role.OPERATOR)
    with serving(env={"MLTRAIN_API_KEYS": key.entry()}) as (url, log):
        query = {"query": "{ __typename }"}
        assert httpx.post(f"{url}/graphql", json=query, timeout=5).status_code == 401
        ok = httpx.post(
            f"{url}/graphql", json=query, timeout=5, headers={"Authorization": f"Bearer {secret}"}
        )
        assert ok.json() == {"data": {"__typename": "Query"}}
        assert "authentication ON: 1 API keys (ops=operator)" in log.read_text()
        assert secret not in log.read_text()
