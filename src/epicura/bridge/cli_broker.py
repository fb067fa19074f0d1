"""`epicura broker …`: a development Mosquitto for the service in one command."""

from __future__ import annotations

from pathlib import Path

import click

from epicura.bridge.broker_config import (
    DEFAULT_BIND,
    DEFAULT_PORT,
    SERVICE_USERNAME,
    ConfigExists,
    write_config,
)


@click.group()
def broker() -> None:
    """The MQTT broker (Mosquitto with its dynamic-security plugin)."""


@broker.command("config")
@click.option("--dir", "folder", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for mosquitto.conf, the dynamic-security file and persistence.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port the broker listens on.")
@click.option("--bind", default=DEFAULT_BIND, show_default=True, help="Address to listen on.")
@click.option("--service-username", default=SERVICE_USERNAME, show_default=True)
@click.option("--service-password", envvar="EPICURA_BROKER_SERVICE_PASSWORD", default=None,
              help="The service account's password (default: generated and printed once).")
@click.option("--plugin", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Path of mosquitto_dynamic_security.so (default: looked up).")
@click.option("--force", is_flag=True,
              help="Replace an existing configuration (its appliance credentials are lost).")
def broker_config(folder: Path, port: int, bind: str, service_username: str,
                  service_password: str | None, plugin: Path | None, force: bool) -> None:
    """Write a development mosquitto.conf and dynamic-security file with the service's
    account; print MQTT_BROKER_URL and the command that starts the broker."""
    if service_password is not None and len(service_password) < 12:
        raise click.BadParameter("at least 12 characters", param_hint="--service-password")
    try:
        written = write_config(folder, port=port, bind=bind, service_username=service_username,
                               service_password=service_password, plugin=plugin,
                               overwrite=force)
    except ConfigExists as exc:
        raise click.ClickException(f"{exc}; give --force to replace it (the appliance "
                                   "credentials it holds are lost)") from None
    except FileNotFoundError as exc:
        raise click.ClickException(f"{exc} (--plugin PATH)") from None
    click.echo(f"wrote {written.conf_path} and {written.dynsec_path}")
    click.echo("start the broker:")
    click.echo(f"  {written.start_command}")
    click.echo("then run the service with:")
    click.echo(f"  MQTT_BROKER_URL={written.url}")
