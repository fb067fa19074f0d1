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
    from epicura.realtime.protocol import UVICORN_WS_OPTIONS

    uvicorn.run(
        "epicura.cli:app_factory", factory=True, host=host, port=port or settings.port,
        workers=workers, log_config=None, proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=30, access_log=False, **UVICORN_WS_OPTIONS,
    )


@main.command()
@click.option("--metrics-host", envvar="WORKER_METRICS_HOST", default="0.0.0.0",  # noqa: S104
              show_default=True, help="Address of the /healthz, /readyz and /metrics port.")
@click.option("--metrics-port", envvar="WORKER_METRICS_PORT", type=click.IntRange(0, 65535),
              default=0, show_default=True, help="Probe port, e.g. 9102 (0: none).")
def worker(metrics_host: str, metrics_port: int) -> None:
    """Run background jobs (e-mails, pushes, rollups, retention)."""
    from epicura.app import job_context
    from epicura.bridge.publisher import close_publisher
    from epicura.kit import jobs, probes, schedule
    from epicura.kit.logging import configure
    from epicura.kit.runtime import Runtime
    from epicura.realtime import outbox

    settings = _settings()
    _refuse_unsafe_production(settings)
    if settings.embedded:
        raise click.UsageError("the embedded default runs jobs inside `epicura serve`; set "
                               "DATABASE_URL to run a separate worker")
    configure(settings.log_level)
    runtime = Runtime.build(settings)

    async def run() -> None:
        context = job_context(runtime)
        server = None
        try:
            if metrics_port:
                checks = {"database": probes.database_check(runtime.db)}
                server = await probes.serve(probes.routes(checks), metrics_host, metrics_port)
            # The job queue and the periodic tasks (rollups, partitions, pruning), side by side.
            await asyncio.gather(jobs.run_forever(context, runtime.jobs.wakeup),
                                 schedule.run_forever(context), outbox.relay(runtime).run())
        finally:
            if server is not None:
                server.close()
            await close_publisher(runtime)  # the down/ messages' broker connection
            await runtime.close()

    asyncio.run(run())


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


@main.command()
@click.option("--demo", is_flag=True,
              help="Load the admin, the demo user and the official demo recipes (idempotent).")
@click.option("--recipes", "count", type=click.IntRange(min=1, max=10_000_000), default=None,
              metavar="N", help="Generate N synthetic public recipes for benchmarks.")
@click.option("--seed-value", type=int, default=0, show_default=True,
              help="Random seed of the synthetic recipes: the same seed gives the same recipes.")
@click.option("--batch-size", type=click.IntRange(min=1, max=20_000), default=2000,
              show_default=True, help="Synthetic recipes written per transaction.")
@click.option("--admin-password", envvar="EPICURA_SEED_ADMIN_PASSWORD", default=None,
              help="Password of admin@epicura.local (default: generated and printed when the "
                   "account is created; an existing account keeps its password).")
@click.option("--demo-password", envvar="EPICURA_SEED_DEMO_PASSWORD", default=None,
              help="Password of demo@epicura.local (same rules as --admin-password).")
def seed(demo: bool, count: int | None, seed_value: int, batch_size: int,
         admin_password: str | None, demo_password: str | None) -> None:
    """Load demo data (--demo) and/or synthetic recipes for benchmarks (--recipes N)."""
    if not demo and count is None:
        raise click.UsageError("nothing to do: give --demo and/or --recipes N")
    settings = _settings()
    if settings.is_production:
        click.echo("refusing to seed demo or benchmark data in production", err=True)
        sys.exit(2)
    for password in (admin_password, demo_password):
        if password is not None:  # registration's rules; `.local` is no registrable address
            _check_admin_input("seed@example.com", "Seed", password)
    asyncio.run(_seed(demo, count, seed_value, batch_size, admin_password, demo_password))


async def _seed(demo: bool, count: int | None, seed_value: int, batch_size: int,
                admin_password: str | None, demo_password: str | None) -> None:
    import time

    from epicura.kit.errors import ProblemError
    from epicura.kit.runtime import Runtime
    from epicura.migrate import upgrade_to_head
    from epicura.recipes import seed as seeding

    settings = _settings()
    if settings.embedded:
        await upgrade_to_head(settings)
    runtime = Runtime.build(settings)
    try:
        if demo:
            report = await seeding.seed_demo(runtime, admin_password=admin_password,
                                             demo_password=demo_password)
            click.echo(seeding.describe(report.admin))
            click.echo(seeding.describe(report.demo))
            click.echo(f"demo recipes: {len(report.created)} created, {report.existing} "
                       "already there")
        if count is not None:
            started = time.perf_counter()
            with click.progressbar(length=count, label="synthetic recipes") as bar:
                synthetic = await seeding.seed_synthetic(
                    runtime, count, seed_value=seed_value, batch_size=batch_size,
                    admin_password=admin_password, on_progress=bar.update)
            elapsed = time.perf_counter() - started
            if not demo:
                click.echo(seeding.describe(synthetic.admin))
            click.echo(f"synthetic recipes: {count} created in {elapsed:.1f} s "
                       f"({count / elapsed:,.0f}/s, seed value {seed_value})")
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


from epicura.simulator.cli import simulate  # noqa: E402  (the simulator owns its command)

main.add_command(simulate)

from epicura.appliances.cli_keys import keys  # noqa: E402  (device sync owns its command)

main.add_command(keys)

from epicura.ota.cli import firmware, release_keys  # noqa: E402  (the OTA module owns these)

keys.add_command(release_keys)
main.add_command(firmware)

from epicura.bridge.cli_broker import broker  # noqa: E402  (the bridge owns its command)

main.add_command(broker)

from epicura.bridge.cli_bridge import bridge  # noqa: E402  (the bridge owns its command)

main.add_command(bridge)

from epicura.realtime.cli_watch import watch  # noqa: E402  (the gateway owns its command)

main.add_command(watch)
