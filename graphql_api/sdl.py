"""The exported SDL: what ``mltrain export-schema`` writes and the drift test compares."""

from __future__ import annotations

from graphql_api.schema import schema


def schema_sdl() -> str:
    return schema.as_str() + "\n"
