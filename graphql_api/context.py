"""What every resolver can reach: the services, the per-request loaders, who is asking."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strawberry.types import Info as StrawberryInfo

from graphql_api.loaders import Loaders
from graphql_api.services.container import Services

if TYPE_CHECKING:
    from graphql_api.auth.keys import ApiKey
    from graphql_api.auth.stored_keys import KeyDirectory
    from graphql_api.live.feed import ChangeFeed


@dataclass
class Context:
    services: Services
    loaders: Loaders
    request: Any = None
    response: Any = None
    actor: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    #: The process's live change feed, for subscriptions (None where no server runs one).
    feed: ChangeFeed | None = None
    #: The API key the request came with (its name is the ``actor``); None if none.
    api_key: ApiKey | None = None
    #: No keys are configured: every caller may do everything (loopback-only servers).
    open_access: bool = False
    #: The WebSocket ``connection_init`` payload (Strawberry sets it; it carries the key).
    connection_params: dict[str, Any] | None = None
    #: Every key the server accepts (configured and stored), where a server runs.
    keys: KeyDirectory | None = None

    @classmethod
    def for_request(cls, services: Services, request: Any = None, response: Any = None) -> Context:
        return cls(services=services, loaders=Loaders(services), request=request, response=response)


Info = StrawberryInfo[Context, Any]
