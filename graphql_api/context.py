"""What every resolver can reach: the services, the per-request loaders, who is asking."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info as StrawberryInfo

from graphql_api.loaders import Loaders
from graphql_api.services.container import Services


@dataclass
class Context:
    services: Services
    loaders: Loaders
    request: Any = None
    response: Any = None
    actor: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @classmethod
    def for_request(cls, services: Services, request: Any = None, response: Any = None) -> Context:
        return cls(services=services, loaders=Loaders(services), request=request, response=response)


Info = StrawberryInfo[Context, Any]
