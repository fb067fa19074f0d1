"""The simulated fleet: makes sure N appliances exist in the service (importing their serials and
provisioning them, or reusing what the state file remembers), then runs them all on one asyncio
loop until stopped."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import structlog

from epicura.simulator import messages
from epicura.simulator.cloud import Cloud, CloudError
from epicura.simulator.device import Counters, Device, Identity, Link, Options
from epicura.simulator.recipes import RecipeBook
from epicura.simulator.statefile import Entry, State, serials
from epicura.simulator.transport import HttpsLink, MqttLink

log = structlog.get_logger("epicura.simulator")

# Imports factory rows `{serial, model, hw_revision, factory_secret}`; returns its counts.
Importer = Callable[[Cloud, list[dict[str, str]]], Awaitable[dict[str, Any]]]
IMPORT_CHUNK = 1000


@dataclass
class FleetConfig:
    appliances: int
    api_url: str
    mqtt_url: str | None = None
    transport: str = "mqtt"
    serial_prefix: str = "SIM-"
    state_file: Path = Path("var/simulator.json")
    duration_s: float | None = None
    seed: int | None = None
    options: Options = field(default_factory=Options)
    model: str = messages.DEFAULT_MODEL
    hw_revision: str = messages.DEFAULT_HW_REVISION
    concurrency: int = 16
    progress_every_s: float = 60.0


@dataclass
class FleetReport:
    devices: list[Device]
    provisioned: int = 0
    reused: int = 0
    claim: tuple[str, str] | None = None  # (serial, claim code) of an appliance nobody owns

    def totals(self) -> Counters:
        total = Counters()
        for device in self.devices:
            for name in total.__dataclass_fields__:
                setattr(total, name, getattr(total, name) + getattr(device.counters, name))
        return total


class Provisioner:
    """Brings the state file's entries to provisioned appliances the service accepts."""

    def __init__(self, cloud: Cloud, config: FleetConfig, state: State,
                 importer: Importer | None) -> None:
        self.cloud, self.config, self.state, self.importer = cloud, config, state, importer
        self.gate = asyncio.Semaphore(config.concurrency)
        self.provisioned = 0

    async def ensure(self, entries: list[Entry]) -> None:
        self.state.save()  # factory secrets are on disk before the service learns them
        fresh = [entry for entry in entries if not entry.provisioned]
        if fresh:
            await self.import_serials(fresh)
        await asyncio.gather(*(self._provision(entry) for entry in fresh))
        self.state.save()

    async def import_serials(self, entries: Iterable[Entry]) -> None:
        rows = [{"serial": e.serial, "model": self.config.model,
                 "hw_revision": self.config.hw_revision, "factory_secret": e.factory_secret}
                for e in entries]
        if self.importer is None:
            log.warning("simulator.no_importer", count=len(rows),
                        hint="give --admin-email/--admin-password, or DATABASE_URL, so the "
                             "simulator can import its serials; provisioning may be refused")
            return
        for start in range(0, len(rows), IMPORT_CHUNK):
            result = await self.importer(self.cloud, rows[start:start + IMPORT_CHUNK])
            refused = [row for row in result.get("rows", []) if row.get("result") == "invalid"]
            log.info("simulator.serials_imported", created=result.get("created"),
                     skipped=result.get("skipped"), invalid=result.get("invalid"),
                     first_refusal=refused[0] if refused else None)

    async def _provision(self, entry: Entry) -> None:
        async with self.gate:
            reply = await self.cloud.provision(
                serial=entry.serial, factory_secret=entry.factory_secret,
                model=self.config.model, hw_revision=self.config.hw_revision,
                firmware_version=entry.firmware_version or messages.FIRMWARE_VERSION)
        entry.device_id, entry.device_secret = str(reply["device_id"]), str(reply["device_secret"])
        mqtt = reply.get("mqtt") or {}
        entry.mqtt_host, entry.mqtt_port = mqtt.get("host"), mqtt.get("port")
        self.provisioned += 1

    async def verify(self, device: Device, entry: Entry) -> None:
        """A remembered appliance must still be accepted; else provision it again (which
        rotates its secret), importing its serial first if the service forgot it."""
        try:
            async with self.gate:
                await device.access_token()
            return
        except CloudError as exc:
            if exc.status not in (401, 403, 404):
                raise
        try:
            await self._provision(entry)
        except CloudError as exc:
            if exc.status != 403:
                raise
            await self.import_serials([entry])
            await self._provision(entry)
        assert entry.device_id is not None and entry.device_secret is not None
        device.identity.device_id, device.identity.device_secret = (entry.device_id,
                                                                    entry.device_secret)
        device.forget_token()


async def _report_progress(report: FleetReport, every_s: float) -> None:
    """A log line now and then: how many are connected, what they sent."""
    while True:
        await asyncio.sleep(every_s)
        totals = report.totals()
        connected = sum(1 for d in report.devices if d.link is not None and d.link.up.is_set())
        log.info("simulator.progress", connected=connected, appliances=len(report.devices),
                 published=totals.published, samples=totals.samples, sessions=totals.sessions,
                 cooking=sum(1 for d in report.devices if d.model.busy), alerts=totals.alerts,
                 commands=totals.commands, updates=totals.updates,
                 update_failures=totals.update_failures,
                 pending=sum(len(d.pending) for d in report.devices))


def _identity(entry: Entry, config: FleetConfig) -> Identity:
    assert entry.device_id is not None and entry.device_secret is not None
    return Identity(serial=entry.serial, device_id=entry.device_id,
                    device_secret=entry.device_secret, model=config.model,
                    hw_revision=config.hw_revision,
                    firmware_version=entry.firmware_version or messages.FIRMWARE_VERSION)


def _mqtt_url(entry: Entry, config: FleetConfig) -> str:
    if config.mqtt_url:
        return config.mqtt_url
    if entry.mqtt_host and entry.mqtt_port:
        scheme = "mqtts" if entry.mqtt_port == 8883 else "mqtt"
        return f"{scheme}://{entry.mqtt_host}:{entry.mqtt_port}"
    return "mqtt://127.0.0.1:1883"


def _link(device: Device, entry: Entry, config: FleetConfig) -> Link:
    if config.transport == "https":
        return HttpsLink(device)
    return MqttLink(device, _mqtt_url(entry, config))


async def prepare_fleet(config: FleetConfig, cloud: Cloud,
                        importer: Importer | None) -> tuple[State, list[Device], Provisioner]:
    state = State.load(config.state_file)
    entries = state.ensure(serials(config.serial_prefix, config.appliances))
    remembered = {entry.serial for entry in entries if entry.provisioned}
    provisioner = Provisioner(cloud, config, state, importer)
    await provisioner.ensure(entries)
    book = RecipeBook(cloud)
    seed = config.seed if config.seed is not None else random.SystemRandom().getrandbits(32)
    devices = [Device(_identity(entry, config), cloud, book, config.options,
                      random.Random(f"{seed}:{entry.serial}"))  # noqa: S311 - not a secret
               for entry in entries]
    by_serial = {entry.serial: entry for entry in entries}
    await asyncio.gather(*(provisioner.verify(d, by_serial[d.identity.serial]) for d in devices
                           if d.identity.serial in remembered))
    for device in devices:
        device.sync_cursor = by_serial[device.identity.serial].sync_cursor
    state.save()
    await book.load()
    return state, devices, provisioner


async def claim_code_for_first_unpaired(devices: list[Device]) -> tuple[str, str] | None:
    """A claim code an operator can redeem (in /docs or the app) to own one simulated
    appliance, as its screen would show it. The first appliance without an owner gets one."""
    for device in devices:
        token = await device.access_token()
        config = await device.cloud.device_get(token, "/device/config")
        if config.status_code == 200 and not config.json().get("paired", False):
            reply = await device.cloud.device_post(token, "/device/claim-codes", {})
            if reply.status_code == 201:
                return device.identity.serial, str(reply.json()["code"])
            return None
    return None


async def run_fleet(config: FleetConfig, *, importer: Importer | None = None,
                    client: httpx2.AsyncClient | None = None,
                    stop: asyncio.Event | None = None,
                    on_ready: Callable[[FleetReport], None] | None = None) -> FleetReport:
    """Provision (or reuse) the fleet and run it until `stop` is set or the duration ends."""
    cloud = Cloud(config.api_url, client=client)
    stop = stop or asyncio.Event()
    try:
        state, devices, provisioner = await prepare_fleet(config, cloud, importer)
        report = FleetReport(devices, provisioned=provisioner.provisioned,
                             reused=len(devices) - provisioner.provisioned)
        report.claim = await claim_code_for_first_unpaired(devices)
        if on_ready is not None:
            on_ready(report)
        entries = {entry.serial: entry for entry in state.entries.values()}
        timer = None
        if config.duration_s is not None:
            timer = asyncio.get_running_loop().call_later(config.duration_s, stop.set)
        progress = asyncio.create_task(_report_progress(report, config.progress_every_s))
        try:
            await asyncio.gather(*(d.run(stop, _link(d, entries[d.identity.serial], config))
                                   for d in devices))
        finally:
            progress.cancel()
            if timer is not None:
                timer.cancel()
            for device in devices:
                entry = entries[device.identity.serial]
                entry.sync_cursor = device.sync_cursor
                if device.identity.firmware_version != messages.FIRMWARE_VERSION:
                    entry.firmware_version = device.identity.firmware_version
            state.save()
        return report
    finally:
        if client is None:
            await cloud.aclose()
