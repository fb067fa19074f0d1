"""`epicura simulate`: a fleet of simulated appliances against a running service."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # imported when the command runs: `epicura --help` stays quick
    from epicura.simulator.fleet import FleetConfig, FleetReport


@click.command()
@click.option("--appliances", "count", type=click.IntRange(1, 100_000), required=True,
              metavar="N", help="How many appliances to simulate.")
@click.option("--api", "api_url", default=None, metavar="URL",
              help="The service's base URL (default: http://127.0.0.1:PORT).")
@click.option("--mqtt", "mqtt_url", default=None, metavar="URL",
              help="Broker URL, mqtt://host:port or mqtts://… (default: what provisioning "
                   "returned).")
@click.option("--transport", type=click.Choice(["mqtt", "https"]), default="mqtt",
              show_default=True, help="MQTT, or the HTTPS fallback of the Device API.")
@click.option("--serial-prefix", default="SIM-", show_default=True,
              help="Serials are PREFIX000001, PREFIX000002, …")
@click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("var/simulator.json"), show_default=True,
              help="Remembers device ids and secrets (0600) so a rerun reuses them.")
@click.option("--duration", type=click.FloatRange(min=1), default=None, metavar="S",
              help="Stop after S seconds (default: until SIGINT/SIGTERM).")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same cooks).")
@click.option("--speed", type=click.FloatRange(0.1, 30), default=1.0, show_default=True,
              help="Simulated seconds per real second while cooking (telemetry stays 1 Hz).")
@click.option("--session-every", type=click.FloatRange(min=1), default=900.0,
              show_default=True, metavar="S",
              help="Mean idle time (simulated) before an appliance cooks a random recipe.")
@click.option("--alert-every", type=click.FloatRange(min=1), default=1800.0,
              show_default=True, metavar="S",
              help="Mean blade running time (simulated) between lid-open alerts.")
@click.option("--release-keys", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="Trusted firmware release keys, JSON {key_id: base64 public key} or "
                   '{"keys": [{key_id, public_key}]}; without them every update is refused '
                   "(signature_invalid).")
@click.option("--ota-check-every", type=click.FloatRange(min=1), default=6 * 3600.0,
              show_default=True, metavar="S",
              help="Simulated seconds between update checks (also once at start, on a "
                   "down/ota notice and on the ota.check command).")
@click.option("--ota-install", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="S", help="Simulated seconds an install takes before the reboot.")
@click.option("--ota-failure-rate", type=click.FloatRange(0, 1), default=0.0,
              show_default=True, metavar="P",
              help="Chance that an install fails (reported failed, install_failed).")
@click.option("--ota-failing-version", "ota_failing_versions", multiple=True,
              metavar="VERSION",
              help="Only installs of this version fail at --ota-failure-rate (repeatable; "
                   "default: any), so a fixed release can succeed in the same run.")
@click.option("--admin-email", default=None, help="Admin account used to import the serials.")
@click.option("--admin-password", envvar="EPICURA_SIM_ADMIN_PASSWORD", default=None,
              help="Its password (or EPICURA_SIM_ADMIN_PASSWORD).")
def simulate(count: int, api_url: str | None, mqtt_url: str | None, transport: str,
             serial_prefix: str, state_file: Path, duration: float | None, seed: int | None,
             speed: float, session_every: float, alert_every: float,
             release_keys: Path | None, ota_check_every: float, ota_install: float,
             ota_failure_rate: float, ota_failing_versions: tuple[str, ...],
             admin_email: str | None, admin_password: str | None) -> None:
    """Simulate N appliances: provision (or reuse) them, then publish presence, state and 1 Hz
    telemetry, cook published recipes now and then, raise the odd alert and answer commands.

    Serials are imported through `POST /admin/appliances/import` with --admin-email and
    --admin-password, or, without them, straight into the database the settings name
    (DATABASE_URL, or the embedded SQLite file).

    Appliances check for firmware updates, verify the release signature with --release-keys,
    download and hash the binary, install (failing at --ota-failure-rate) and reboot with the
    new version, reporting each step on up/ota."""
    from epicura.config import Settings
    from epicura.kit.logging import configure
    from epicura.simulator.device import Options
    from epicura.simulator.fleet import FleetConfig
    from epicura.simulator.ota import load_release_keys

    settings = Settings()
    configure(settings.log_level)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # not a line per request
    if settings.is_production:
        raise click.UsageError("refusing to simulate appliances against production settings")
    if (admin_email is None) != (admin_password is None):
        raise click.UsageError("give both --admin-email and --admin-password, or neither")
    try:
        keys = load_release_keys(release_keys) if release_keys is not None else {}
    except ValueError as exc:  # json.JSONDecodeError is one
        raise click.BadParameter(str(exc), param_hint="--release-keys") from exc
    config = FleetConfig(
        appliances=count, api_url=api_url or f"http://127.0.0.1:{settings.port}",
        mqtt_url=mqtt_url, transport=transport, serial_prefix=serial_prefix,
        state_file=state_file, duration_s=duration, seed=seed,
        options=Options(time_scale=speed, session_every_s=session_every,
                        lid_alert_per_s=1 / alert_every, release_keys=keys,
                        ota_check_every_s=ota_check_every, ota_install_s=ota_install,
                        ota_failure_rate=ota_failure_rate,
                        ota_failing_versions=frozenset(ota_failing_versions)),
    )
    try:
        report = asyncio.run(_run(config, settings, admin_email, admin_password))
    except Exception as exc:  # a clean message for the operator, not a traceback
        from epicura.simulator.cloud import CloudError

        if isinstance(exc, CloudError | OSError):
            raise click.ClickException(str(exc)) from exc
        raise
    _print_totals(report)


async def _run(config: FleetConfig, settings: Any, admin_email: str | None,
               admin_password: str | None) -> FleetReport:
    from epicura.simulator.fleet import Importer, run_fleet
    from epicura.simulator.importers import api_importer, database_importer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    importer: Importer | None
    if admin_email is not None and admin_password is not None:
        importer = api_importer(admin_email, admin_password)
    else:
        importer = database_importer(settings)
    return await run_fleet(config, importer=importer, stop=stop, on_ready=_print_ready)


def _print_ready(report: FleetReport) -> None:
    click.echo(f"{len(report.devices)} appliances ready ({report.provisioned} provisioned, "
               f"{report.reused} reused); Ctrl-C stops them", err=True)
    if report.claim is not None:
        serial, code = report.claim
        click.echo(f"claim code for {serial} (valid 10 minutes): {code}  "
                   f"-> POST /api/v1/appliances/claim", err=True)


def _print_totals(report: FleetReport) -> None:
    totals = report.totals()
    click.echo(f"published {totals.published} messages ({totals.samples} samples), "
               f"{totals.sessions} sessions, {totals.alerts} alerts, {totals.commands} commands, "
               f"{totals.updates} updates installed, {totals.update_failures} failed"
               + (f", {totals.dropped} dropped" if totals.dropped else ""), err=True)
    sys.stderr.flush()
