"""The `kap` command."""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Annotated, Any

import typer

from kap.core.settings import ConfigError, Settings, get_settings, is_loopback, load_settings

app = typer.Typer(help="Kap: client implementation projects, self-hosted.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(user_app, name="user")
backup_app = typer.Typer(help="Inspect backups.", no_args_is_help=True)
app.add_typer(backup_app, name="backup")


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
    from sqlalchemy.exc import OperationalError

    from kap.core.migrate import migrate

    settings = _settings()
    try:
        migrate(settings)
    except OperationalError as exc:
        if "does not exist" in str(exc.orig):
            _fail("the database named in KAP_DATABASE_URL does not exist: create it (e.g. `createdb`), "
                  "then run `kap migrate` again")
        _fail(f"the database is not reachable ({str(exc.orig).strip().splitlines()[0]})")
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


DEV_BANNER = """\
kap: ==================================================================
kap:  DEV_AUTH=1: identity by assertion. Anyone who can reach this
kap:  server can act as any user of any org by naming them in the
kap:  X-Dev-User / X-Dev-Org headers. For a developer's own machine only.
kap: =================================================================="""


def _served_settings(settings: Settings, host: str | None, port: int | None) -> Settings:
    """The settings every part of the server reads, with the host and port actually served."""
    os.environ["KAP_HOST"] = host or settings.kap_host
    os.environ["KAP_PORT"] = str(port or settings.kap_port)
    get_settings.cache_clear()
    return _settings()


def _check_bind(settings: Settings) -> None:
    """Dev headers are identity by assertion: keep such a server off the network unless told otherwise."""
    if settings.dev_auth:
        if not is_loopback(settings.kap_host) and not settings.kap_dev_allow_remote:
            _fail(f"DEV_AUTH=1 binds to loopback only, not {settings.kap_host}: anyone who can reach the "
                  "server could act as any user. Set KAP_DEV_ALLOW_REMOTE=1 to bind it anyway.")
        typer.echo(DEV_BANNER, err=True)
    if settings.kap_env == "production" and not settings.kap_public_url:
        typer.echo(f"kap: warning: KAP_PUBLIC_URL is not set; links in mail will point at "
                   f"{settings.public_url}", err=True)


def _run_server(settings: Settings, host: str | None, port: int | None, workers: int) -> None:
    import uvicorn

    from kap.app import configure_logging

    settings = _served_settings(settings, host, port)
    _check_bind(settings)
    configure_logging(settings.kap_log_level)
    if settings.auto_migrate:
        from kap.core.migrate import migrate

        try:
            migrate(settings)
        except Exception as exc:  # keep serving: routes answer 503 db_not_ready
            typer.echo(f"kap: migration failed ({exc.__class__.__name__}); serving in not-ready mode",
                       err=True)
    os.environ["KAP_AUTO_MIGRATE"] = "0"  # already done once for all workers
    consumer = _embedded_consumer(settings)
    _recover_at_start()
    try:
        uvicorn.run("kap.app:app_factory", factory=True, host=settings.kap_host,
                    port=settings.kap_port, http="httptools", workers=workers,
                    log_level=settings.kap_log_level.lower(), access_log=False, proxy_headers=False)
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)


def _recover_at_start() -> None:
    """Finish or fail what a crash left in flight and sweep its leftovers, before serving."""
    from kap.core import jobs
    from kap.core.recovery import run_recovery

    try:
        run_recovery(jobs.current_runtime())
    except Exception as exc:  # a database that is not ready yet: the scheduled pass retries
        typer.echo(f"kap: recovery at start skipped ({exc.__class__.__name__})", err=True)


@app.command()
def recover() -> None:
    """Run the crash-recovery pass once and print what it repaired or swept."""
    from kap.core import jobs
    from kap.core.recovery import run_recovery

    _settings()
    for name, count in run_recovery(jobs.current_runtime()).items():
        typer.echo(f"{name}: {count}")


def _embedded_consumer(settings: Settings) -> Any:
    """Without Redis, `kap serve` runs the job consumer (and the schedule) in its own threads."""
    if settings.kap_redis_url:
        return None
    from kap.core import jobs
    from kap.core.runtime import Runtime

    jobs.load_all_tasks()
    jobs.bind_runtime(Runtime.build(settings))
    return jobs.start_consumer(workers=2, periodic_tasks=True, embedded=True)


@app.command()
def worker(
    threads: Annotated[int, typer.Option(help="Jobs run at the same time in this process.")] = 2,
    periodic: Annotated[bool, typer.Option("--periodic/--no-periodic",
                                           help="Also run the schedule (each tick runs once among workers).")] = True,
) -> None:
    """Run a job consumer on the Redis queue (KAP_REDIS_URL)."""
    from kap.app import configure_logging
    from kap.core import jobs
    from kap.core.runtime import Runtime

    settings = _settings()
    if not settings.kap_redis_url:
        _fail("kap worker needs KAP_REDIS_URL; without it `kap serve` runs the jobs itself")
    configure_logging(settings.kap_log_level)
    jobs.load_all_tasks()
    jobs.bind_runtime(Runtime.build(settings))
    _recover_at_start()
    from kap.documents import sandbox

    sandbox.warm()
    consumer = jobs.start_consumer(workers=threads, periodic_tasks=periodic, embedded=False)
    consumer.run()


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


@app.command()
def smoke(
    url: Annotated[str, typer.Option(help="Base URL of the deployment, e.g. https://kap.example.com")],
    token: Annotated[str | None, typer.Option(help="Bearer token (production).")] = None,
    dev_user: Annotated[str | None, typer.Option(help="X-Dev-User (DEV_AUTH=1 deployments).")] = None,
    dev_org: Annotated[str | None, typer.Option(help="X-Dev-Org.")] = None,
    dev_role: Annotated[str, typer.Option(help="X-Dev-Role.")] = "owner",
    project: Annotated[str | None, typer.Option(help="Project id; a new project is created when omitted.")] = None,
    email_to: Annotated[str | None, typer.Option(help="Sign-off recipient (default DIGEST_TEST_EMAIL).")] = None,
    target: Annotated[str | None, typer.Option(help="Project id the sentinel probes (default: a random id).")] = None,
) -> None:
    """Run seed, stage, sign-off link, token page, digest preview and sentinel against a deployment."""
    from kap.qa.smoke import SmokeClient, dev_headers

    if bool(token) == bool(dev_user):
        _fail("give exactly one of --token or --dev-user")
    headers = {"Authorization": f"Bearer {token}"} if token else dev_headers(str(dev_user), dev_org, dev_role)
    recipient = email_to or os.environ.get("DIGEST_TEST_EMAIL") or "smoke@example.com"
    client = SmokeClient(url=url, headers=headers, project=project, email_to=recipient, target=target)
    ok = client.run()
    for line in client.lines:
        typer.echo(line)
    typer.echo(f"kap smoke: {'passed' if ok else 'FAILED'} against {url}")
    if not ok:
        raise typer.Exit(1)


@backup_app.command("verify")
def backup_verify(key: Annotated[str, typer.Argument(help="A backup key (backups/<org>/<project>/YYYYMMDD.zip) "
                                                          "or the path of a downloaded backup file.")]) -> None:
    """Prove a backup is intact: structure, manifest and the sha256 of every entry."""
    from kap.backups.verify import verify_backup

    settings = _settings()
    ok, lines = verify_backup(settings, key)
    for line in lines:
        typer.echo(line if ok else f"kap: {line}", err=not ok)
    if not ok:
        raise typer.Exit(1)


def main() -> None:
    try:
        load_settings()
    except ConfigError as exc:
        typer.echo(f"kap: {exc}", err=True)
        raise SystemExit(2) from None
    app()
