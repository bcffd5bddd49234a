"""The ``mltrain`` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="mltrain: a GraphQL control plane for ML training.", no_args_is_help=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [env MLTRAIN_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [env MLTRAIN_PORT].")] = None,
    demo: Annotated[
        bool, typer.Option(help="Seed demo models, versions and jobs into an empty database.")
    ] = False,
) -> None:
    """Run the GraphQL server (GraphiQL at http://HOST:PORT/graphql)."""
    import uvicorn

    from graphql_api.app import create_app
    from graphql_api.settings import get_settings

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    bind_host, bind_port = host or settings.host, port or settings.port
    typer.echo(f"mltrain: GraphiQL at http://{bind_host}:{bind_port}/graphql")
    uvicorn.run(
        create_app(settings, demo=demo),
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level.lower(),
        ws_ping_interval=20,
    )


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path("schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) to a file; schema.graphql in the repo is this output."""
    from graphql_api.sdl import schema_sdl

    output.write_text(schema_sdl())
    typer.echo(f"wrote {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
