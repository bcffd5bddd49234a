"""The UI's and GraphiQL's files come from this server, never a CDN: each URL GraphiQL's page
names is served from the package with the bytes its integrity hash names; every vendored file
is the one the lockfile pins; files are cached for a year by versioned URL, the pages that name
them are revalidated; nothing outside the package's static folder is reachable."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from graphql_api.ui import APP_CSP, STATIC, app_digest
from tests.security_helpers import KEYS, bearer

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "graphql_api" / "ui" / "vendor.lock.json"
URL = re.compile(r'(?:src|href)="([^"]+)"')
INTEGRITY = re.compile(r'(?:src|href)="([^"]+)"\s+integrity="([^"]+)"')


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


async def _client(with_keys: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    storage = MongoStorage.connect(None, f"ui_{uuid.uuid4().hex[:8]}")
    application = create_app(
        Settings(allowed_hosts=["testserver"], feed_poll_interval=60.0),
        storage=storage,
        keys=KEYS if with_keys else None,
    )
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client():
        yield c


async def test_graphiql_page_loads_every_file_from_this_server_with_its_integrity(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/graphql", headers={"accept": "text/html"})).text
    urls = [url for url in URL.findall(page) if not url.startswith("data:")]
    assert len(urls) == 7  # React, ReactDOM, js-cookie, GraphiQL (js, css), explorer (js, css)
    assert all(url.startswith("/assets/vendor/") for url in urls), urls
    assert "unpkg" not in page and "://" not in "".join(urls)
    hashes = dict(INTEGRITY.findall(re.sub(r"\s*crossorigin\s*", " ", page)))
    assert set(hashes) == set(urls)
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert sri(response.content) == hashes[url], url  # what the browser checks


def test_every_vendored_file_is_the_one_the_lockfile_pins() -> None:
    lock = json.loads(LOCK.read_text())
    expected: dict[Path, str] = {}
    for package in lock["packages"]:
        assert package["integrity"].startswith("sha512-")
        assert package["license"]
        folder = ROOT / package["dest"] / f"{package['name']}@{package['version']}"
        for name, digest in package["files"].items():
            expected[folder / name] = digest
        # The license travels with the code: a LICENSE file, or the package.json naming it.
        assert any(n.startswith("LICENSE") or n == "package.json" for n in package["files"])
    on_disk = {
        path
        for base in (STATIC / "vendor", ROOT / "tests" / "ui_vendor")
        for path in base.rglob("*")
        if path.is_file()
    }
    assert on_disk == set(expected), "a vendored file is missing or not in vendor.lock.json"
    for path, digest in expected.items():
        assert sri(path.read_bytes()) == digest, f"{path} differs from vendor.lock.json"


async def test_files_are_compressed_for_clients_that_accept_it(client: httpx.AsyncClient) -> None:
    url = "/assets/vendor/graphiql@3.8.3/graphiql.min.js"
    plain = await client.get(url, headers={"accept-encoding": "identity"})
    packed = await client.get(url, headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["content-type"] == "text/javascript; charset=utf-8"
    assert int(packed.headers["content-length"]) < len(plain.content) // 3
    assert packed.content == plain.content  # httpx undoes the gzip


@pytest.mark.parametrize(
    "path",
    [
        "/assets/vendor/../app/index.html",
        "/assets/vendor/%2e%2e/app/index.html",
        "/assets/vendor/..%2f..%2f__init__.py",
        "/assets/vendor/graphiql@3.8.3/",
        "/assets/vendor/graphiql@3.8.3/missing.js",
        "/assets/app/0000000000000000/main.js",  # an older release's URL
        "/assets/app/main.js",
        "/assets/__init__.py",
        "/assets/../__init__.py",
        "/assets/vendor/graphiql@3.8.3\\graphiql.min.js",
    ],
)
async def test_nothing_outside_the_static_files_is_served(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404, path
    assert "import" not in response.text


async def test_the_app_page_is_revalidated_and_its_files_are_named_by_digest(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["content-security-policy"] == APP_CSP
    assert "default-src 'self'" in APP_CSP and "connect-src 'self'" in APP_CSP
    urls = [u for u in URL.findall(page.text) if not u.startswith(("data:", "#"))]
    assert "/graphql" in urls
    urls.remove("/graphql")  # the link to GraphiQL
    own = [u for u in urls if u.startswith(f"/assets/app/{app_digest()}/")]
    assert own and all(u in own or u.startswith("/assets/vendor/") for u in urls), urls
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"].endswith("immutable")


async def test_with_keys_the_pages_are_served_but_graphql_still_wants_a_key() -> None:
    async for c in _client(with_keys=True):
        assert (await c.get("/")).status_code == 200
        page = (await c.get("/graphql", headers={"accept": "text/html"})).text
        first = URL.findall(page)[1]
        assert (await c.get(first)).status_code == 200
        query = {"query": "{ __typename }"}
        assert (await c.post("/graphql", json=query)).status_code == 401
        response = await c.post("/graphql", json=query, headers=bearer(Role.VIEWER))
        assert response.status_code == 200
