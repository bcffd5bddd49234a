"""HTTP answers given before GraphQL runs (401, 413), in the GraphQL response shape."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response


def graphql_error_response(
    status: int,
    message: str,
    extensions: Mapping[str, object],
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response an ASGI middleware can send as is: ``await response(scope, receive, send)``."""
    body = orjson.dumps({"errors": [{"message": message, "extensions": dict(extensions)}]})
    return Response(body, status_code=status, media_type="application/json", headers=headers)
