"""``mltrain keys create|list|revoke --database-uri``: keys kept in a database, taken up by a
running ``mltrain serve`` over it, as an operator does it. Needs the real server (a process
cannot share the in-memory mock); ``keys create`` without a database is in test_security_keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pymongo
import pytest
from typer.testing import CliRunner

from graphql_api.cli import app
from tests.conftest import REAL_URI
from tests.live_servers import serving

pytestmark = pytest.mark.skipif(REAL_URI is None, reason="needs MLTRAIN_TEST_MONGODB_URI")

runner = CliRunner()


@pytest.fixture
def database() -> Iterator[str]:
    name = f"mltrain_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        with pymongo.MongoClient[dict[str, Any]](str(REAL_URI)) as client:
            client.drop_database(name)


def keys(database: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["keys", *args, "--database-uri", str(REAL_URI), "--database", database]
    )
    return result.exit_code, result.output


def stored(database: str) -> list[dict[str, Any]]:
    with pymongo.MongoClient[dict[str, Any]](str(REAL_URI)) as client:
        return list(client[database]["api_keys"].find({}))


def test_create_list_revoke_against_a_running_server(database: str) -> None:
    code, output = keys(
        database, "create", "--name", "trainer-7", "--role", "worker", "--model-name", "churn-*"
    )
    assert code == 0, output
    secret = next(line.strip() for line in output.splitlines() if "mlt_" in line)
    env = {"MLTRAIN_MONGODB_URI": str(REAL_URI), "MLTRAIN_MONGODB_DATABASE": database}
    with serving(env=env) as (url, _log):
        headers = {"Authorization": f"Bearer {secret}"}
        query = {"query": "{ __typename }"}
        assert httpx.post(f"{url}/graphql", json=query, headers=headers).status_code == 200
        # A key in the database turns authentication on: no key, no answer.
        assert httpx.post(f"{url}/graphql", json=query).status_code == 401
        code, listing = keys(database, "list")
        assert code == 0 and secret not in listing
        assert "trainer-7\tworker\tactive\tchurn-*" in listing
        code, output = keys(database, "revoke", "trainer-7")
        assert code == 0 and "revoked trainer-7" in output, output
        # The server polls the revision (0.25 s): wait on the refusal, bounded.
        for _ in range(200):
            if httpx.post(f"{url}/graphql", json=query, headers=headers).status_code == 401:
                break
        else:
            pytest.fail("the revoked key was still accepted after 200 requests")
        _, listing = keys(database, "list")
        assert "trainer-7\tworker\trevoked" in listing


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--name", "k", "--role", "root"], "--role: unknown role 'root'"),
        (["--name", "has space", "--role", "viewer"], "--name:"),
        (
            ["--name", "k", "--role", "viewer", "--expires-at", "2020-01-01T00:00:00+00:00"],
            "--expires-at: must be in the future",
        ),
        (
            ["--name", "k", "--role", "viewer", "--expires-at", "tomorrow"],
            "--expires-at: 'tomorrow' is not an ISO 8601",
        ),
        (
            ["--name", "k", "--role", "viewer", "--model-name", "churn-[ab]"],
            "--model-name (modelNames[0]): pattern",
        ),
    ],
    ids=["role", "name", "expiry-past", "expiry-garbled", "glob"],
)
def test_bad_input_is_one_line_naming_the_option_and_stores_nothing(
    args: list[str], says: str, database: str
) -> None:
    code, output = keys(database, "create", *args)
    assert code == 2 and says in output, output
    assert stored(database) == []


def test_a_taken_name_is_refused(database: str) -> None:
    assert keys(database, "create", "--name", "k", "--role", "viewer")[0] == 0
    code, output = keys(database, "create", "--name", "k", "--role", "admin")
    assert code == 2 and "--name: an API key named 'k' exists" in output, output
    assert [key["role"] for key in stored(database)] == ["viewer"]
    code, output = keys(database, "revoke", "nobody")
    assert code == 2 and "'nobody' does not exist" in output, output
