"""HTTP authentication of /graphql: ``Authorization: Bearer <key>``, else 401.

With keys configured, a request without a valid key gets 401 (and ``WWW-Authenticate``)
before any GraphQL work. The GraphiQL page itself (a GET asking for HTML) carries no data, so
it is served without a key when GraphiQL is on; its requests need one like any other.
The verified key is left in the ASGI scope for the GraphQL context.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from graphql_api.auth.keys import ApiKey, bearer_secret
from graphql_api.auth.stored_keys import Keys
from graphql_api.responses import graphql_error_response

SCOPE_KEY = "mltrain.api_key"


UNAUTHENTICATED = graphql_error_response(
    401,
    "A valid API key is required: send `Authorization: Bearer <key>`.",
    {"code": "UNAUTHENTICATED"},
    headers={"WWW-Authenticate": 'Bearer realm="mltrain"'},
)


def scope_key(scope: Scope) -> ApiKey | None:
    key: ApiKey | None = scope.get(SCOPE_KEY)
    return key


class RequireApiKey:
    def __init__(self, app: ASGIApp, keys: Keys, *, ide_page: bool) -> None:
        self.app = app
        self.keys = keys
        self.ide_page = ide_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = self.keys.verify(bearer_secret(headers.get("authorization")))
        if key is None and not self._is_ide_page(scope, headers):
            await UNAUTHENTICATED(scope, receive, send)
            return
        scope[SCOPE_KEY] = key
        await self.app(scope, receive, send)

    def _is_ide_page(self, scope: Scope, headers: Headers) -> bool:
        return (
            self.ide_page
            and scope["method"] == "GET"
            and "text/html" in headers.get("accept", "")
            and b"query=" not in scope.get("query_string", b"")
        )
