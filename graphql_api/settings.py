"""One typed settings object, read from ``MLTRAIN_*`` environment variables (and ``.env``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def in_memory(self) -> bool:
        return not self.mongodb_uri


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
