"""One typed settings object, read from ``MLTRAIN_*`` environment variables (and ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from strawberry.http.websocket_origin import normalize_allowed_origins


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLTRAIN_", env_file=".env", extra="ignore")

    mongodb_uri: str | None = Field(
        default=None,
        description="MongoDB connection string. Unset: an embedded in-memory database "
        "(mongomock-motor) whose data is lost when the server stops.",
    )
    mongodb_database: str = Field(default="mltrain", description="Database name.")
    host: str = Field(default="127.0.0.1", description="Address `mltrain serve` binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `mltrain serve` binds.")
    graphiql: bool = Field(default=True, description="Serve GraphiQL at GET /graphql.")
    log_level: str = Field(default="info", description="Python log level of the server.")

    # Security (docs/security.md).
    api_keys: str | None = Field(
        default=None,
        description="API keys as name:role:sha256hex entries, comma-separated (`mltrain keys "
        "create` prints one). With none configured (here or in api_keys_file) the server is "
        "open and `mltrain serve` binds only to loopback.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="File of API keys: name:role:sha256hex lines, or a JSON list of "
        '{"name", "role", "sha256"} objects.',
    )
    introspection: bool = Field(
        default=True, description="Answer introspection queries (switch off in production)."
    )
    max_query_depth: int = Field(default=10, ge=1, description="Deepest field nesting.")
    max_aliases: int = Field(default=30, ge=0, description="Aliases in one document.")
    max_tokens: int = Field(default=2000, ge=10, description="Tokens in one document.")
    max_root_fields: int = Field(default=10, ge=1, description="Root fields in one operation.")
    max_body_bytes: int = Field(
        default=1_000_000, ge=1024, description="HTTP request body (and WebSocket message) bytes."
    )
    max_subscriptions_per_connection: int = Field(
        default=20, ge=1, description="Subscriptions open at once on one WebSocket."
    )
    max_connections_per_key: int = Field(
        default=20, ge=1, description="WebSocket connections open at once with one API key."
    )

    # Subscriptions (docs/subscriptions.md).
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins (e.g. https://monitor.example.com) whose pages may open a "
        "WebSocket to /graphql, comma-separated; `*` allows any. Same-origin pages and "
        "non-browser clients (which send no Origin) are always allowed.",
    )
    ws_keep_alive_interval: float = Field(
        default=15.0, gt=0, description="Seconds between keep-alive messages on a WebSocket."
    )
    ws_connection_init_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a WebSocket client has to send connection_init."
    )
    ws_per_message_deflate: bool = Field(
        default=False,
        description="Accept permessage-deflate on WebSockets (`mltrain serve`). Off by default: "
        "measured, it costs memory per connection and CPU per frame (bench/README.md, "
        "Subscriptions).",
    )
    feed_poll_interval: float = Field(
        default=0.15,
        gt=0,
        description="Seconds between reads of the change log for changes made by other "
        "server instances (local changes are pushed at once).",
    )
    feed_gap_grace: float = Field(
        default=2.0,
        gt=0,
        description="Seconds the feed waits for a missing sequence number (an append in "
        "flight) before sealing it as the hole left by a writer that died.",
    )
    subscriber_buffer: int = Field(
        default=1000,
        ge=1,
        description="Events one subscription may have waiting; past that it is ended as too "
        "slow, with the cursor to resume from.",
    )
    subscriber_max_lag: float = Field(
        default=10.0,
        gt=0,
        description="Seconds an event may wait to be sent to a subscription; past that it is "
        "ended as too slow (SUBSCRIBER_TOO_SLOW), with the cursor to resume from. Bounds "
        "delivery lag, and sheds fan-out the server cannot keep up with before requests wait.",
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            # Fail at start-up, not at the first handshake, on a malformed origin.
            normalize_allowed_origins([str(v) for v in value])
        return value

    @property
    def in_memory(self) -> bool:
        return not self.mongodb_uri


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
