"""`epicura bridge`: the MQTT consumer process."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import click

from epicura.config import Settings


def default_client_id(instance: int) -> str:
    """Stable across restarts of the same instance (its persistent session is found again),
    distinct between instances (a duplicate client id disconnects the other one)."""
    return f"epicura-bridge-{socket.gethostname()}-{instance}"


@click.command("bridge")
@click.option("--client-id", envvar="BRIDGE_CLIENT_ID", default=None,
              help="MQTT client id (default: epicura-bridge-<hostname>-<instance>). Must be "
                   "unique per bridge and stable across its restarts.")
@click.option("--instance", envvar="BRIDGE_INSTANCE", type=click.IntRange(min=0), default=0,
              show_default=True, help="Instance number, for several bridges on one host.")
@click.option("--metrics-host", envvar="BRIDGE_METRICS_HOST", default="0.0.0.0",  # noqa: S104
              show_default=True, help="Address of the /healthz, /readyz and /metrics port.")
@click.option("--metrics-port", envvar="BRIDGE_METRICS_PORT", type=click.IntRange(0, 65535),
              default=9101, show_default=True, help="Probe port (0: none).")
@click.option("--batch-size", type=click.IntRange(1, 5000), default=500, show_default=True,
              help="Most messages stored per transaction.")
@click.option("--batch-ms", type=click.IntRange(0, 5000), default=50, show_default=True,
              help="Longest wait for a batch to fill after its first message.")
@click.option("--receive-maximum", type=click.IntRange(1, 65535), default=4000,
              show_default=True, help="Unacknowledged messages the broker may send at once.")
@click.option("--session-expiry", type=click.IntRange(60, 7 * 86400), default=3600,
              show_default=True,
              help="Seconds the broker keeps this bridge's session (and queues its messages) "
                   "while it is away.")
@click.option("--presence-sweep/--no-presence-sweep", default=True, show_default=True,
              help="Mark appliances silent for 90 s offline (one bridge at a time does it).")
def bridge(client_id: str | None, instance: int, metrics_host: str, metrics_port: int,
           batch_size: int, batch_ms: int, receive_maximum: int, session_expiry: int,
           presence_sweep: bool) -> None:
    """Run the MQTT bridge: device messages in, stored, acknowledged; live events out."""
    from epicura.bridge.consumer import BridgeOptions
    from epicura.bridge.mqtt_session import SessionOptions

    settings = Settings()
    _check(settings)
    options = BridgeOptions(
        session=SessionOptions(client_id=client_id or default_client_id(instance),
                               session_expiry_s=session_expiry,
                               receive_maximum=receive_maximum),
        batch_max=batch_size, batch_wait_s=batch_ms / 1000,
    )
    asyncio.run(_run(settings, options, metrics_host, metrics_port, presence_sweep))


def _check(settings: Settings) -> None:
    if settings.is_production and (problems := settings.production_problems()):
        for problem in problems:
            click.echo(f"refusing to start in production: {problem}", err=True)
        sys.exit(2)
    if settings.mqtt_broker_url is None:
        raise click.UsageError("MQTT_BROKER_URL is not set: there is no broker to bridge "
                               "(appliances use the HTTPS device API in the embedded default)")
    if settings.database_url is None:
        raise click.UsageError("the bridge is a process of its own and needs DATABASE_URL "
                               "(and REDIS_URL for live events)")


async def _run(settings: Settings, options: object, metrics_host: str, metrics_port: int,
               presence_sweep: bool) -> None:
    import structlog

    from epicura.bridge import handlers, presence
    from epicura.bridge.broker_admin import BrokerEndpoint
    from epicura.bridge.consumer import Bridge, BridgeOptions
    from epicura.bridge.probes import serve_probes
    from epicura.kit.logging import configure
    from epicura.kit.runtime import Runtime

    assert isinstance(options, BridgeOptions)
    assert settings.mqtt_broker_url is not None
    configure(settings.log_level)
    log = structlog.get_logger("epicura.bridge")
    handlers.load()
    rt = Runtime.build(settings)
    worker = Bridge(rt, BrokerEndpoint.from_url(settings.mqtt_broker_url), options)
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main.cancel)
    background: list[asyncio.Task[None]] = [asyncio.create_task(rt.bus.run())]
    if presence_sweep:
        background.append(asyncio.create_task(presence.run_sweeper(rt)))
    server = await serve_probes(rt, worker.health, metrics_host, metrics_port) \
        if metrics_port else None
    log.info("bridge_started", client_id=options.session.client_id, metrics_port=metrics_port)
    try:
        await worker.run()
    except asyncio.CancelledError:
        log.info("bridge_stopping")
    finally:
        await worker.drain()
        for task in background:
            task.cancel()
        await asyncio.wait(background, timeout=5)
        if server is not None:
            server.close()
        await rt.close()
