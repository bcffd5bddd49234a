"""The ``mltrain`` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from graphql_api.settings import Settings

app = typer.Typer(help="mltrain: a GraphQL control plane for ML training.", no_args_is_help=True)


def cannot_start(reason: str) -> NoReturn:
    """The one line a user sees when the server cannot start, then exit status 2."""
    typer.echo(f"mltrain: cannot start: {reason}", err=True)
    raise typer.Exit(2)


def check_database(settings: Settings) -> None:
    """Reach the configured database (and create its indexes) before serving, so an
    unreachable server or a bad URI is one clear line within MLTRAIN_MONGODB_TIMEOUT."""
    import asyncio

    from graphql_api.storage.base import DatabaseConfigError, DatabaseUnavailable
    from graphql_api.storage.mongo import MongoStorage, masked

    uri = settings.mongodb_uri
    if not uri:
        return

    async def reach() -> None:
        storage = MongoStorage.connect(
            uri, settings.mongodb_database, timeout=settings.mongodb_timeout
        )
        try:
            await storage.ensure_indexes()
        finally:
            await storage.close()

    try:
        asyncio.run(reach())
    except DatabaseConfigError as error:
        cannot_start(f"MLTRAIN_MONGODB_URI is not a usable MongoDB URI: {error}")
    except DatabaseUnavailable as error:
        cannot_start(
            f"the database at {masked(uri)} is unavailable: {error.reason} "
            f"(MLTRAIN_MONGODB_URI; waited {settings.mongodb_timeout:g} s, "
            "MLTRAIN_MONGODB_TIMEOUT)"
        )


@app.command()
def serve(
    # Parentheses, not brackets: typer's rich help would take "[env ...]" for markup.
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: MLTRAIN_HOST, else 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port to bind (default: MLTRAIN_PORT, else 8000)."),
    ] = None,
    demo: Annotated[
        bool, typer.Option(help="Seed demo models, versions and jobs into an empty database.")
    ] = False,
    allow_open_network: Annotated[
        bool,
        typer.Option(
            help="Serve without API keys on a non-loopback address: anyone who can reach it "
            "may do everything. Only for a network you fully trust."
        ),
    ] = False,
) -> None:
    """Run the GraphQL server (GraphiQL at http://HOST:PORT/graphql)."""
    import uvicorn

    from graphql_api.app import create_app
    from graphql_api.auth.exposure import is_loopback
    from graphql_api.auth.keys import KeyConfigError, KeyRing
    from graphql_api.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as error:
        cannot_start(str(error))
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    bind_host, bind_port = host or settings.host, port or settings.port
    try:
        keys = KeyRing.load(settings.api_keys, settings.api_keys_file)
    except KeyConfigError as error:
        cannot_start(str(error))
    if not keys.enabled and not is_loopback(bind_host) and not allow_open_network:
        typer.echo(
            f"mltrain: refusing to serve on {bind_host} without API keys: anyone who can reach "
            "it could change every model and job. Configure keys (`mltrain keys create`, then "
            "MLTRAIN_API_KEYS or MLTRAIN_API_KEYS_FILE), bind to 127.0.0.1, or pass "
            "--allow-open-network if this network is fully trusted.",
            err=True,
        )
        raise typer.Exit(2)
    check_database(settings)
    typer.echo(
        f"mltrain: authentication {'ON' if keys.enabled else 'OFF (open access)'}"
        f"{f', {len(keys.keys)} API keys' if keys.enabled else ''}"
    )
    typer.echo(f"mltrain: GraphiQL at http://{bind_host}:{bind_port}/graphql")
    uvicorn.run(
        create_app(settings, demo=demo, keys=keys),
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level.lower(),
        ws_ping_interval=20,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        # One WebSocket message may be no larger than one HTTP request body.
        ws_max_size=settings.max_body_bytes,
    )


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path("schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) to a file; schema.graphql in the repo is this output."""
    from graphql_api.sdl import schema_sdl

    try:
        output.write_text(schema_sdl())
    except OSError as error:
        typer.echo(f"mltrain: cannot write {output}: {error.strerror or error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {output}")


keys_app = typer.Typer(help="API keys (docs/security.md).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="Who uses the key; recorded as the actor.")],
    role: Annotated[str, typer.Option(help="viewer, worker, operator or admin.")],
) -> None:
    """Make a new API key: prints the secret (once; it is not stored) and its config entry."""
    from graphql_api.auth.keys import KeyConfigError, generate
    from graphql_api.auth.roles import Role

    try:
        secret, key = generate(name, Role(role.lower()))
    except ValueError as error:  # KeyConfigError, or an unknown role
        message = str(error) if isinstance(error, KeyConfigError) else f"unknown role {role!r}"
        typer.echo(f"mltrain: {message} (roles: viewer, worker, operator, admin)", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"secret (shown once; give it to {key.name}, it cannot be recovered):")
    typer.echo(f"  {secret}")
    typer.echo("server entry (add to MLTRAIN_API_KEYS, comma-separated, or a line of the file")
    typer.echo("named by MLTRAIN_API_KEYS_FILE):")
    typer.echo(f"  {key.entry()}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
