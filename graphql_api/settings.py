"""One typed settings object, read from ``MLTRAIN_*`` environment variables (and ``.env``).

Every setting has a type and a range; a value outside it stops the server at start-up with
one line naming the variable (``load_settings`` raises ``SettingsError``), not a traceback.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from strawberry.http.websocket_origin import normalize_allowed_origins


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLTRAIN_", env_file=".env", extra="ignore")

    mongodb_uri: str | None = Field(
        default=None,
        description="MongoDB connection string. Unset: an embedded in-memory database "
        "(mongomock-motor) whose data is lost when the server stops.",
    )
    mongodb_database: str = Field(
        default="mltrain",
        min_length=1,
        max_length=63,
        pattern=r'^[^/\\. "$*<>:|?\x00]+$',
        description="Database name (MongoDB's rules: at most 63 characters, none of "
        '/\\. "$*<>:|?).',
    )
    mongodb_timeout: float = Field(
        default=2.5,
        gt=0,
        le=300,
        description="Seconds any database operation may take (connecting included); past it, "
        "or with the database unreachable, a request fails with DATABASE_UNAVAILABLE (up to "
        "~0.5 s later while the server refuses connections: the driver retries in steps).",
    )
    update_guard: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Conditional updates through the claim guard (docs/real-server.md): `auto` "
        "turns it on only for servers measured to need it (FerretDB v1); `on`/`off` force it.",
    )
    windowed_sorts: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Sorted list pages read in widening windows of the sort key "
        "(docs/real-server.md): `auto` turns it on only for servers that sort without an "
        "index (FerretDB v2 + DocumentDB); `on`/`off` force it.",
    )
    host: str = Field(
        default="127.0.0.1", min_length=1, description="Address `mltrain serve` binds."
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port `mltrain serve` binds.")
    graphiql: bool = Field(default=True, description="Serve GraphiQL at GET /graphql.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level of the server."
    )

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
    key_poll_interval: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="Seconds between reads of the stored keys' revision: a key issued or "
        "revoked while running (createApiKey, mltrain keys) takes effect on every instance "
        "within this plus one read (docs/security.md).",
    )
    key_last_used_interval: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="Seconds between writes of stored keys' last-use times (coalesced: "
        "one round trip for all keys used since, never one per request).",
    )
    rate_limit_requests: float = Field(
        default=0,
        ge=0,
        description="Requests per second one key may make on this instance (per client "
        "address without keys): HTTP requests and operations started over a WebSocket. "
        "0 (default): no limit (docs/security.md, rate limits).",
    )
    rate_limit_request_burst: int = Field(
        default=0,
        ge=0,
        description="Requests one key may make at once above the rate (the bucket's size); "
        "0: twice the rate, at least 1.",
    )
    rate_limit_mutations: float = Field(
        default=0,
        ge=0,
        description="Mutation cost per second one key may spend on this instance (each "
        "mutation root field costs 1). 0 (default): no limit.",
    )
    rate_limit_mutation_burst: int = Field(
        default=0,
        ge=0,
        description="Mutation cost one key may spend at once above the rate; 0: twice the "
        "rate, at least 1.",
    )
    introspection: bool = Field(
        default=True, description="Answer introspection queries (switch off in production)."
    )
    max_query_depth: int = Field(default=10, ge=1, le=100, description="Deepest field nesting.")
    max_aliases: int = Field(default=30, ge=0, le=10_000, description="Aliases in one document.")
    max_tokens: int = Field(
        default=2000, ge=10, le=1_000_000, description="Tokens in one document."
    )
    max_root_fields: int = Field(
        default=10, ge=1, le=1_000, description="Root fields in one operation."
    )
    max_query_fields: int = Field(
        default=1000,
        ge=1,
        description="Fields in one operation, at every level, each fragment spread counted as "
        "the fields it expands to (docs/security.md, cost model).",
    )
    max_field_comparisons: int = Field(
        default=2_000,
        ge=0,
        description="Comparisons of same-named fields graphql-core's overlap check may make for "
        "one document (docs/security.md, cost model).",
    )
    max_body_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        le=100_000_000,
        description="HTTP request body (and WebSocket message) bytes.",
    )
    max_subscriptions_per_connection: int = Field(
        default=20, ge=1, le=10_000, description="Subscriptions open at once on one WebSocket."
    )
    max_connections_per_key: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="WebSocket connections open at once with one API key.",
    )
    max_connections_per_address: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Without API keys: WebSocket connections open at once from one client "
        "address (with keys, the per-key cap applies).",
    )

    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Without API keys, the server answers only requests whose Host is "
        "localhost, an IP address or one of these names (comma-separated; `*.example.com` "
        "matches its subdomains, `*` any): a defence against DNS rebinding. Ignored with keys.",
    )

    # Subscriptions (docs/subscriptions.md).
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins (e.g. https://monitor.example.com) whose pages may open a "
        "WebSocket to /graphql, comma-separated; `*` allows any. Same-origin pages and "
        "non-browser clients (which send no Origin) are always allowed.",
    )
    ws_keep_alive_interval: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="Seconds between keep-alive messages on a WebSocket.",
    )
    ws_connection_init_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a WebSocket client has to send connection_init.",
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
        le=3600,
        description="Seconds between reads of the change log for changes made by other "
        "server instances (local changes are pushed at once).",
    )
    feed_gap_grace: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="Seconds the feed waits for a missing sequence number (an append in "
        "flight) before sealing it as the hole left by a writer that died.",
    )
    event_retention_seconds: float = Field(
        default=30 * 24 * 3600,
        ge=0,
        description="Seconds the change log keeps an event (history, subscription resume); "
        "0 keeps events forever by age. Older cursors get CURSOR_EXPIRED. The newest 1,000 "
        "events are always kept.",
    )
    event_retention_count: int = Field(
        default=0,
        ge=0,
        description="At most this many of the newest sequence numbers are kept in the change "
        "log (0: no limit by count; otherwise at least 1000).",
    )
    sweep_interval: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between runs of the liveness sweep (docs/workers.md); the leader "
        "lease that makes one instance sweep lasts three of them.",
    )
    heartbeat_grace: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="Seconds a LATE job (its lease lapsed) waits for its worker before it "
        "fails with HEARTBEAT_LOST.",
    )
    outbox_sweep_interval: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="Seconds between sweeps for changes whose event a crashed writer left "
        "pending in the record (docs/subscriptions.md, 'Never a change without its event').",
    )
    outbox_grace: float = Field(
        # Seconds, not the next writer's 0.5 s: a sweep that relays an event its writer is
        # still appending (a loaded server) costs a hole in the log, which holds subscribers
        # back for the gap grace; a crash's events can wait a few seconds.
        default=5.0,
        ge=0,
        le=3600,
        description="Seconds a change's own writer is given to relay its event before the "
        "sweep relays it instead.",
    )
    event_retention_interval: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="Seconds between retention runs of the change log (each deletes at most "
        "20,000 events, in batches of 1,000).",
    )
    subscriber_buffer: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
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

    # Webhooks (docs/webhooks.md).
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks target loopback, private and link-local addresses (a "
        "receiver on the same host or network; the tests). Off: such URLs are refused at "
        "createWebhook and at every delivery (SSRF, docs/security.md).",
    )
    webhook_max_attempts: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Attempts at one delivery before it is dead-lettered and the webhook's "
        "cursor moves on.",
    )
    webhook_retry_base: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="Seconds: the n-th retry waits a random time up to "
        "min(cap, base * 2^(n-1)) (exponential backoff, full jitter).",
    )
    webhook_retry_cap: float = Field(
        default=600.0, gt=0, le=86400, description="Seconds: the longest wait between retries."
    )
    webhook_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds one delivery attempt may take (connecting, sending, the answer's "
        "status line); past it the attempt failed.",
    )
    webhook_poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="Seconds between the delivering instance's reads of the webhooks and the "
        "change log (its own changes wake it at once), and between its lease renewals.",
    )
    webhook_lease_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="Seconds the delivering instance's lease lasts unrenewed: when it dies, "
        "another instance takes over within this (plus one poll interval).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("event_retention_count")
    @classmethod
    def _retention_count(cls, value: int) -> int:
        if 0 < value < 1000:
            raise ValueError("must be 0 (no limit by count) or at least 1000")
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            for pattern in value:
                text = str(pattern)
                wildcard_ok = (
                    text == "*"
                    or "*" not in text
                    or (text.startswith("*.") and "*" not in text[1:])
                )
                if not wildcard_ok:
                    raise ValueError(
                        f"invalid host pattern {text!r}: use a name, '*.example.com' or '*'"
                    )
                if not text or any(c in text for c in "/:@ "):
                    raise ValueError(
                        f"invalid host pattern {text!r}: a host name without scheme or port"
                    )
        return value

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

    @property
    def guarded_updates(self) -> bool | None:
        """``update_guard`` as the storage takes it: None = decide by the server."""
        return {"auto": None, "on": True, "off": False}[self.update_guard]

    @property
    def sort_windows(self) -> bool | None:
        """``windowed_sorts`` as the storage takes it: None = decide by the server."""
        return {"auto": None, "on": True, "off": False}[self.windowed_sorts]


class SettingsError(ValueError):
    """Settings that cannot work; the message names each variable and what is wrong."""


def load_settings() -> Settings:
    """The settings from the environment (and ``.env``); SettingsError if any is invalid."""
    try:
        return Settings()
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False):
            field = str(problem["loc"][0]) if problem["loc"] else ""
            variable = f"MLTRAIN_{field.upper()}" if field else "settings"
            value = problem.get("input")
            shown = f"={value!r}" if isinstance(value, str | int | float) else ""
            message = str(problem["msg"]).removeprefix("Value error, ")
            problems.append(f"{variable}{shown}: {message}")
        raise SettingsError("; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
