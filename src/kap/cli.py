"""The `kap` command."""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Annotated

import typer

from kap.core.settings import ConfigError, Settings, get_settings, load_settings

app = typer.Typer(help="Kap: client implementation projects, self-hosted.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(user_app, name="user")


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        typer.echo(f"kap: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str) -> None:
    typer.echo(f"kap: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def config() -> None:
    """Print the effective configuration, secrets masked."""
    settings = _settings()
    for key, value in settings.masked().items():
        typer.echo(f"{key}={json.dumps(value, default=str)}")


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (and, on PostgreSQL, the app role and policies)."""
    from kap.core.migrate import migrate

    settings = _settings()
    migrate(settings)
    typer.echo("kap: database is at the latest schema")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (KAP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (KAP_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="API processes.")] = 1,
) -> None:
    """Run the Kap server."""
    settings = _settings()
    _run_server(settings, host, port, workers)


def _run_server(settings: Settings, host: str | None, port: int | None, workers: int) -> None:
    import uvicorn

    from kap.app import configure_logging

    configure_logging(settings.kap_log_level)
    if settings.auto_migrate:
        from kap.core.migrate import migrate

        try:
            migrate(settings)
        except Exception as exc:  # keep serving: routes answer 503 db_not_ready
            typer.echo(f"kap: migration failed ({exc.__class__.__name__}); serving in not-ready mode",
                       err=True)
    os.environ["KAP_AUTO_MIGRATE"] = "0"  # already done once for all workers
    uvicorn.run("kap.app:app_factory", factory=True, host=host or settings.kap_host,
                port=port or settings.kap_port, http="httptools", workers=workers,
                log_level=settings.kap_log_level.lower(), access_log=False, proxy_headers=False)


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the server after.")] = True,
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Create the demo org, projects and users (idempotent), print the self-test, then serve."""
    from kap.core.migrate import migrate
    from kap.demo import create_demo, self_test_lines

    os.environ.setdefault("DEV_AUTH", "1")
    get_settings.cache_clear()
    settings = _settings()
    if not settings.dev_auth:
        _fail("kap demo needs DEV_AUTH=1 (the self-test uses dev headers)")
    migrate(settings)
    ids = create_demo(settings)
    app_url = f"http://{host or settings.kap_host}:{port or settings.kap_port}"
    typer.echo(ids.describe())
    typer.echo("\nOne-minute self-test (paste into another shell):\n")
    typer.echo(f"export APP={app_url}")
    for line in self_test_lines(ids):
        typer.echo(line)
    sys.stdout.flush()
    if serve_after:
        _run_server(settings, host, port, 1)


@user_app.command("add")
def user_add(
    email: str,
    org: Annotated[str, typer.Option(help="Org id or name (created if the name is new).")],
    project: Annotated[str | None, typer.Option(help="Project id to add the user to.")] = None,
    role: Annotated[str, typer.Option(help="Project role: owner, admin, pm, lead, member.")] = "member",
    org_role: Annotated[str, typer.Option(help="Org role: owner, admin, member.")] = "member",
) -> None:
    """Add a user to an org and optionally a project."""
    from kap.demo import add_user

    settings = _settings()
    try:
        user_id = add_user(settings, email=email, org=org, project=uuid.UUID(project) if project else None,
                           role=role, org_role=org_role)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"kap: user {email} is {user_id}")


def main() -> None:
    try:
        load_settings()
    except ConfigError as exc:
        typer.echo(f"kap: {exc}", err=True)
        raise SystemExit(2) from None
    app()
