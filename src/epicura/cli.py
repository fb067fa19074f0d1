"""`epicura`: the one command line of the service."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import click

from epicura.config import Settings


def _settings() -> Settings:
    return Settings()


def _refuse_unsafe_production(settings: Settings) -> None:
    if settings.is_production and (problems := settings.production_problems()):
        for problem in problems:
            click.echo(f"refusing to start in production: {problem}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Epicura Cloud: API, MQTT bridge, workers and admin portal."""


def app_factory() -> object:
    from epicura.app import create_app
    from epicura.kit.logging import configure

    settings = _settings()
    configure(settings.log_level)
    return create_app(settings)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option("--port", type=int, default=None, help="Port (default: PORT or 3000).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
def serve(host: str, port: int | None, workers: int) -> None:
    """Run the HTTP API, WebSocket gateway and admin portal."""
    import uvicorn

    settings = _settings()
    _refuse_unsafe_production(settings)
    if settings.embedded and workers > 1:
        raise click.UsageError("the embedded default runs in one process; set DATABASE_URL and "
                               "REDIS_URL to run several workers")
    # uvicorn re-raises SIGTERM once its graceful shutdown is done; exit 0 then, not -15.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "epicura.cli:app_factory", factory=True, host=host, port=port or settings.port,
        workers=workers, log_config=None, proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=30, access_log=False,
    )


@main.command()
def worker() -> None:
    """Run background jobs (e-mails, pushes, rollups, retention)."""
    from epicura.app import job_context
    from epicura.kit import jobs
    from epicura.kit.logging import configure
    from epicura.kit.runtime import Runtime

    settings = _settings()
    _refuse_unsafe_production(settings)
    if settings.embedded:
        raise click.UsageError("the embedded default runs jobs inside `epicura serve`; set "
                               "DATABASE_URL to run a separate worker")
    configure(settings.log_level)
    runtime = Runtime.build(settings)

    async def run() -> None:
        try:
            await jobs.run_forever(job_context(runtime), runtime.jobs.wakeup)
        finally:
            await runtime.close()

    asyncio.run(run())


@main.command()
def bridge() -> None:
    """Run the MQTT bridge (not yet: it arrives with the appliances issue)."""
    click.echo("epicura bridge: not yet available; appliances use the HTTPS device API for now.")
    sys.exit(1)


@main.group()
def db() -> None:
    """Database migrations."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    from epicura.migrate import run

    run(_settings(), "upgrade", revision)


@db.command()
@click.argument("revision", default="-1")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (default: one step)."""
    from epicura.migrate import run

    run(_settings(), "downgrade", revision)


@db.command()
def current() -> None:
    """Show the database's current revision."""
    from epicura.migrate import run

    run(_settings(), "current")


@main.group()
def admin() -> None:
    """Administrator accounts."""


@admin.command("create")
@click.option("--email", required=True, help="The admin's e-mail (an existing user is promoted).")
@click.option("--display-name", default="Administrator", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def admin_create(email: str, display_name: str, password_stdin: bool) -> None:
    """Create an admin account (or promote a user), asking for the password."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _check_admin_input(email, display_name, password)
    asyncio.run(_create_admin(email, display_name, password))
    click.echo(f"admin {email} is ready")


def _check_admin_input(email: str, display_name: str, password: str) -> None:
    """The same rules as registration (valid e-mail, 8+ characters); the input is never echoed."""
    from pydantic import ValidationError

    from epicura.auth.schemas import RegisterRequest

    try:
        RegisterRequest(email=email, password=password, display_name=display_name)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(reasons) from None


async def _create_admin(email: str, display_name: str, password: str) -> None:
    from epicura.auth import service
    from epicura.kit.errors import ProblemError
    from epicura.kit.runtime import Runtime
    from epicura.migrate import upgrade_to_head

    settings = _settings()
    if settings.embedded:
        await upgrade_to_head(settings)
    runtime = Runtime.build(settings)
    try:
        async with runtime.db.transaction() as session:
            await service.create_admin(runtime, session, email, password, display_name)
    except ProblemError as exc:
        raise click.ClickException(exc.title) from exc
    finally:
        await runtime.close()


@main.group()
def config() -> None:
    """Settings."""


@config.command("check")
def config_check() -> None:
    """Print the effective settings (secrets masked) and what production would refuse."""
    settings = _settings()
    click.echo(json.dumps(settings.masked(), indent=2, default=str))
    problems = settings.production_problems()
    click.echo("\nmissing or unsafe for production:" if problems else "\nready for production")
    for line in problems:
        click.echo(f"  - {line}")
    for line in settings.production_warnings():
        click.echo(f"  ~ {line}")
    if settings.is_production and problems:
        sys.exit(2)
