"""The ``mltrain`` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from graphql_api.settings import Settings

app = typer.Typer(help="mltrain: a GraphQL control plane for ML training.", no_args_is_help=True)


def cannot_start(reason: str) -> NoReturn:
    """The one line a user sees when the server cannot start, then exit status 2."""
    typer.echo(f"mltrain: cannot start: {reason}", err=True)
    raise typer.Exit(2)


def check_database(settings: Settings) -> bool:
    """Reach the configured database (and create its indexes) before serving, so an
    unreachable server or a bad URI is one clear line within MLTRAIN_MONGODB_TIMEOUT.
    Whether the database holds API keys (then authentication is on)."""
    import asyncio

    from graphql_api.storage.base import DatabaseConfigError, DatabaseUnavailable
    from graphql_api.storage.mongo import MongoStorage, masked

    uri = settings.mongodb_uri
    if not uri:
        return False

    async def reach() -> bool:
        storage = MongoStorage.connect(
            uri, settings.mongodb_database, timeout=settings.mongodb_timeout
        )
        try:
            await storage.ensure_indexes()
            return await storage.api_keys.any_stored()
        finally:
            await storage.close()

    try:
        return asyncio.run(reach())
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
    from graphql_api.gc_tuning import tune_for_serving
    from graphql_api.settings import SettingsError, get_settings
    from graphql_api.ws_protocol import LeanWebSocketsProtocol

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
    stored_keys = check_database(settings)
    if (
        not keys.enabled
        and not stored_keys
        and not is_loopback(bind_host)
        and not allow_open_network
    ):
        typer.echo(
            f"mltrain: refusing to serve on {bind_host} without API keys: anyone who can reach "
            "it could change every model and job. Configure keys (`mltrain keys create`, then "
            "MLTRAIN_API_KEYS or MLTRAIN_API_KEYS_FILE), bind to 127.0.0.1, or pass "
            "--allow-open-network if this network is fully trusted.",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(
        f"mltrain: authentication {'ON' if keys.enabled or stored_keys else 'OFF (open access)'}"
        f"{f', {len(keys.keys)} API keys' if keys.enabled else ''}"
        f"{', keys stored in the database' if stored_keys else ''}"
    )
    typer.echo(f"mltrain: GraphiQL at http://{bind_host}:{bind_port}/graphql")
    server_app = create_app(settings, demo=demo, keys=keys)
    tune_for_serving()
    uvicorn.run(
        server_app,
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level.lower(),
        # uvicorn's sans-I/O WebSocket protocol, holding less per idle connection.
        ws=LeanWebSocketsProtocol,
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


DatabaseUri = Annotated[
    str | None,
    typer.Option(
        "--database-uri",
        help="Keep the key in this database (a MongoDB URI; every instance over it accepts "
        "the key within a second). Without it, print an entry for MLTRAIN_API_KEYS.",
    ),
]
URI_HELP = "The database (MongoDB URI)."
DatabaseName = Annotated[
    str | None,
    typer.Option(
        "--database", help="Database name (default: MLTRAIN_MONGODB_DATABASE, else mltrain)."
    ),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"mltrain: {message}", err=True)
    raise typer.Exit(2)


def _run_with_keys(uri: str, database: str | None, use: Any) -> Any:
    """Run ``use(service)`` against the keys stored in the database at ``uri``."""
    import asyncio
    import os

    from graphql_api.domain.api_keys import ROLE_NAMES
    from graphql_api.domain.errors import DomainError
    from graphql_api.services.api_keys import ApiKeyService
    from graphql_api.storage.base import DatabaseConfigError, DatabaseUnavailable
    from graphql_api.storage.mongo import MongoStorage, masked

    name = database or os.environ.get("MLTRAIN_MONGODB_DATABASE") or "mltrain"

    async def run() -> Any:
        storage = MongoStorage.connect(uri, name)
        try:
            await storage.ensure_indexes()
            return await use(ApiKeyService(storage.api_keys, ROLE_NAMES))
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except DatabaseConfigError as error:
        _fail(f"--database-uri is not a usable MongoDB URI: {error}")
    except DatabaseUnavailable as error:
        _fail(f"the database at {masked(uri)} is unavailable: {error.reason}")
    except DomainError as error:
        field = getattr(error, "field", None)
        option = {"name": "--name", "role": "--role", "expiresAt": "--expires-at"}.get(
            str(field), f"--model-name ({field})" if field else ""
        )
        message = error.message.removeprefix(f"{field}: ")
        _fail(f"{option}: {message}" if option else message)


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="Who uses the key; recorded as the actor.")],
    role: Annotated[str, typer.Option(help="viewer, worker, operator or admin.")],
    database_uri: DatabaseUri = None,
    database: DatabaseName = None,
    expires_at: Annotated[
        str | None,
        typer.Option(help="With --database-uri: when it stops working (ISO 8601 with a zone)."),
    ] = None,
    model_name: Annotated[
        list[str] | None,
        typer.Option(
            help="With --database-uri: limit it to model names matching this pattern "
            "(`churn-*`; repeat for several)."
        ),
    ] = None,
) -> None:
    """Make a new API key: prints the secret (once; it is not stored) and where it is kept."""
    from graphql_api.auth.keys import KeyConfigError, generate
    from graphql_api.auth.roles import Role

    if database_uri is None:
        if expires_at is not None or model_name:
            _fail("--expires-at and --model-name need --database-uri (stored keys only)")
        try:
            secret, key = generate(name, Role(role.lower()))
        except ValueError as error:  # KeyConfigError, or an unknown role
            message = str(error) if isinstance(error, KeyConfigError) else f"unknown role {role!r}"
            _fail(f"{message} (roles: viewer, worker, operator, admin)")
        typer.echo(f"secret (shown once; give it to {key.name}, it cannot be recovered):")
        typer.echo(f"  {secret}")
        typer.echo("server entry (add to MLTRAIN_API_KEYS, comma-separated, or a line of the file")
        typer.echo("named by MLTRAIN_API_KEYS_FILE):")
        typer.echo(f"  {key.entry()}")
        return
    from datetime import datetime

    expiry = None
    if expires_at is not None:
        try:
            expiry = datetime.fromisoformat(expires_at)
        except ValueError:
            _fail(f"--expires-at: {expires_at!r} is not an ISO 8601 date and time")

    async def create(service: Any) -> Any:
        return await service.create(name, role.lower(), expiry, model_name or None)

    issued = _run_with_keys(database_uri, database, create)
    typer.echo(f"secret (shown once; give it to {issued.key.name}, it cannot be recovered):")
    typer.echo(f"  {issued.secret}")
    typer.echo("stored in the database: every instance accepts it within a second.")


@keys_app.command("list")
def list_keys(
    database_uri: Annotated[
        str, typer.Option("--database-uri", help="The database (MongoDB URI).")
    ],
    database: DatabaseName = None,
) -> None:
    """The keys stored in the database (never their secrets): name, role, scope, dates."""
    from datetime import UTC, datetime

    async def read(service: Any) -> Any:
        return await service.all()

    keys = _run_with_keys(database_uri, database, read)
    now = datetime.now(UTC)
    typer.echo("name\trole\tstatus\tmodel_names\tcreated_at\tlast_used_at\texpires_at")
    for key in keys:
        status = (
            "revoked"
            if key.revoked_at
            else "expired"
            if key.expires_at and key.expires_at <= now
            else "active"
        )
        dates = (key.created_at, key.last_used_at, key.expires_at)
        shown = ["-" if d is None else d.isoformat(timespec="seconds") for d in dates]
        scope = ",".join(key.scope.patterns) or "*"
        typer.echo("\t".join([key.name, key.role, status, scope, *shown]))


@keys_app.command("revoke")
def revoke_key(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    database_uri: Annotated[
        str, typer.Option("--database-uri", help="The database (MongoDB URI).")
    ],
    database: DatabaseName = None,
) -> None:
    """Revoke a stored key: every instance refuses it within a second and closes its WebSockets."""

    async def revoke(service: Any) -> Any:
        return await service.revoke(name)

    key = _run_with_keys(database_uri, database, revoke)
    typer.echo(f"revoked {key.name} (at {key.revoked_at.isoformat(timespec='seconds')})")


@app.command(context_settings={"allow_interspersed_args": False})
def worker(
    command: Annotated[
        list[str],
        typer.Argument(
            help="The training command and its arguments, after `--`; run once per job, in "
            "the worker's directory, with the job in its environment (MLTRAIN_JOB_ID, "
            "MLTRAIN_HYPERPARAMETERS_FILE, MLTRAIN_JOB_DIR, ...: docs/workers.md).",
            show_default=False,
        ),
    ],
    queue: Annotated[str, typer.Option(help="The queue to claim jobs from.")] = "default",
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Jobs run at once (one command each).")
    ] = 1,
    url: Annotated[
        str,
        typer.Option(envvar="MLTRAIN_URL", help="The server (env MLTRAIN_URL)."),
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="MLTRAIN_API_KEY",
            help="A key of role worker or higher (env MLTRAIN_API_KEY).",
            show_default=False,
        ),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(help="How this worker is shown (TrainingJob.workerId); the host name."),
    ] = None,
    lease_seconds: Annotated[
        int,
        typer.Option(min=1, max=3600, help="Lease per claim; heartbeats every third of it."),
    ] = 60,
    logs_dir: Annotated[
        Path,
        typer.Option(
            envvar="MLTRAIN_WORKER_LOGS_DIR",
            help="Each job's output goes to LOGS_DIR/JOB_ID/output.log (env "
            "MLTRAIN_WORKER_LOGS_DIR).",
        ),
    ] = Path("mltrain-logs"),
    logs_url: Annotated[
        str | None,
        typer.Option(
            envvar="MLTRAIN_WORKER_LOGS_URL",
            help="Where LOGS_DIR can be read (https://host/logs, s3://bucket/logs): each "
            "job's logsUrl is set to LOGS_URL/JOB_ID/output.log (env MLTRAIN_WORKER_LOGS_URL).",
            show_default=False,
        ),
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between claims while the queue is empty.")
    ] = 1.0,
    max_jobs: Annotated[
        int | None,
        typer.Option(min=1, help="Exit after this many jobs.", show_default=False),
    ] = None,
) -> None:
    """Claim jobs of a queue and run COMMAND for each (docs/workers.md).

    It heartbeats, logs the output, ends the job by exit status, forwards a cancel as SIGTERM."""
    from mltrain.client import MltrainError
    from mltrain.worker import WorkerConfig, command_problem, run_worker

    problem = command_problem(command)
    if problem is not None:
        _fail(
            f"COMMAND: {problem} (rule: a path to an executable file, or a program on PATH); "
            "nothing was claimed"
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO: two lines a second per slot of polls and heartbeats.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = WorkerConfig(
        url=url,
        queue=queue,
        command=command,
        api_key=api_key,
        worker_id=worker_id,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        logs_dir=logs_dir.resolve(),
        logs_url=logs_url,
        poll_interval=poll_interval,
        max_jobs=max_jobs,
    )
    typer.echo(
        f"mltrain worker: queue {queue!r}, {concurrency} at a time, server {url}, "
        f"logs in {config.logs_dir}"
    )
    try:
        run_worker(config)
    except MltrainError as refused:
        _fail(f"the server refused the worker's first claim: {refused}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
