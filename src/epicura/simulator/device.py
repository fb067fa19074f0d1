"""One simulated appliance at run time: ticks its model once a second, batches the samples into
telemetry messages every 2-5 s, sends session events and alerts as they happen, starts a
cooking session now and then, and answers what the cloud sends down. Delivery is the link's
business (`transport.py`); what cannot be sent now waits, in order, in `pending`."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from epicura.simulator import messages
from epicura.simulator.appliance import ApplianceModel
from epicura.simulator.cloud import Cloud, DeviceToken
from epicura.simulator.ota import Updater
from epicura.simulator.program import Program
from epicura.simulator.recipes import RecipeBook

log = structlog.get_logger("epicura.simulator")

Outgoing = tuple[str, dict[str, Any], bool]  # (up/ topic name, payload, retain)


@dataclass
class Identity:
    serial: str
    device_id: str
    device_secret: str
    model: str = messages.DEFAULT_MODEL
    hw_revision: str = messages.DEFAULT_HW_REVISION
    firmware_version: str = messages.FIRMWARE_VERSION
    channel: str = "stable"


@dataclass
class Options:
    time_scale: float = 1.0  # simulated seconds per real second (cooking goes faster)
    session_every_s: float = 900.0  # mean idle time before a cook starts a recipe
    batch_s: tuple[float, float] = (2.0, 5.0)
    lid_alert_per_s: float = 1 / 1800
    start_after_prepare_s: tuple[float, float] = (3.0, 10.0)
    max_pending: int = 2000
    sync_on_boot: bool = True  # like the firmware: sync the library once connected
    boot_sync_within_s: float = 30.0  # spread over the fleet
    # firmware updates (`ota.py`)
    ota_check_every_s: float = 6 * 3600.0  # simulated; plus once at start
    ota_install_s: float = 30.0  # simulated
    ota_failure_rate: float = 0.0  # chance that an install fails (`install_failed`)
    ota_failing_versions: frozenset[str] = frozenset()  # only these fail (empty: any)
    release_keys: dict[str, str] = field(default_factory=dict)  # trusted: key_id → base64


class Link(Protocol):
    """A way to the cloud: MQTT, or the HTTPS fallback."""

    up: asyncio.Event

    async def publish(self, name: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        ...

    async def run(self, stop: asyncio.Event) -> None:
        ...

    def restart(self) -> None:
        """Reconnect as after a reboot (birth again, with the new firmware version)."""


@dataclass
class Counters:
    published: int = 0
    samples: int = 0
    sessions: int = 0
    alerts: int = 0
    commands: int = 0
    dropped: int = 0
    updates: int = 0
    update_failures: int = 0


@dataclass
class Prepared:
    program: Program
    session_id: str | None
    start_at: float


class Device:
    def __init__(self, identity: Identity, cloud: Cloud, book: RecipeBook, options: Options,
                 rng: random.Random, clock: Callable[[], float] = time.time) -> None:
        self.identity = identity
        self.cloud, self.book, self.options = cloud, book, options
        self.rng, self.clock = rng, clock
        self.model = ApplianceModel(rng, lid_alert_per_s=options.lid_alert_per_s)
        self.boot_id = uuid.uuid4().hex
        self.link: Link | None = None
        self.pending: deque[Outgoing] = deque()
        self.wake = asyncio.Event()
        self.sent = asyncio.Event()
        self.counters = Counters()
        self.settings: dict[str, Any] = dict(messages.DEFAULT_SETTINGS)
        self.config_version = 0
        self.library: dict[str, dict[str, Any]] = {}
        self.sync_cursor: str | None = None
        self.prepared: Prepared | None = None
        self.recent_results: dict[str, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.ota = Updater(self)
        self._token: DeviceToken | None = None
        self._batch: list[dict[str, Any]] = []
        self._batch_session: str | None = None
        self._telemetry_seq = 0
        self._next_flush = 0.0
        self._starting = False
        self._last_session: str | None = None

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def run(self, stop: asyncio.Event, link: Link, *, drain_s: float = 3.0) -> None:
        """Run until `stop`; then send what is pending (for up to `drain_s`) and let the link
        say goodbye."""
        self.link = link
        link_stop = asyncio.Event()
        link_task = asyncio.create_task(link.run(link_stop))
        sender = asyncio.create_task(self.sender(link_stop))
        if self.options.sync_on_boot:
            self.spawn(self._boot_sync(stop))
        self.spawn(self._update_checks(stop))
        try:
            await self.ticker(stop)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_s):
                    while self.pending and link.up.is_set():
                        self.sent.clear()
                        await self.sent.wait()
        finally:
            link_stop.set()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(link_task, sender, *self.tasks, return_exceptions=True)

    async def _boot_sync(self, stop: asyncio.Event) -> None:
        from epicura.simulator.commands import sync

        await _wait_any(stop, seconds=self.rng.uniform(0, self.options.boot_sync_within_s))
        if not stop.is_set():
            await sync(self)

    async def _update_checks(self, stop: asyncio.Event) -> None:
        """Once soon after start (spread over the fleet), then every `ota_check_every_s`."""
        await _wait_any(stop, seconds=self.rng.uniform(0, self.options.boot_sync_within_s))
        while not stop.is_set():
            await self.ota.check_and_update()
            await _wait_any(stop, seconds=self.options.ota_check_every_s /
                            self.options.time_scale)

    def reboot(self, firmware_version: str) -> None:
        """Come back from an installed update: a new boot, the new version in presence and
        state once the link is back."""
        self.identity.firmware_version = firmware_version
        self.boot_id = uuid.uuid4().hex
        self._telemetry_seq = 0
        if self.link is not None:
            self.link.restart()

    # --- outgoing --------------------------------------------------------------------------
    def send(self, name: str, body: dict[str, Any], *, retain: bool = False) -> None:
        """Queue a message (stamped now) for the sender; the oldest telemetry gives way."""
        self.pending.append((name, messages.envelope(self.now_ms(), body), retain))
        if len(self.pending) > self.options.max_pending:
            self._drop_oldest_telemetry()
        self.wake.set()

    def _drop_oldest_telemetry(self) -> None:
        for index, (name, _, _) in enumerate(self.pending):
            if name.startswith("telemetry"):
                del self.pending[index]
                self.counters.dropped += 1
                return

    def birth(self) -> list[Outgoing]:
        """What the link sends first on each connection (retained presence, then state)."""
        now = self.now_ms()
        return [
            ("presence", messages.presence_online(now, self.identity.firmware_version,
                                                  self.boot_id), True),
            ("state", self.state_payload(), True),
        ]

    def state_payload(self) -> dict[str, Any]:
        return messages.reported_state(
            self.now_ms(), firmware_version=self.identity.firmware_version,
            hw_revision=self.identity.hw_revision, channel=self.identity.channel,
            settings=self.settings, storage_free_mb=self.rng.randint(900, 1400),
            wifi_rssi=self.rng.randint(-72, -45), session_id=self.model.session_id)

    async def sender(self, stop: asyncio.Event) -> None:
        """Send `pending` in order; a failed message stays first until the link is back."""
        while not stop.is_set():
            link = self.link
            if not self.pending or link is None or not link.up.is_set():
                self.wake.clear()
                await _wait_any(stop, self.wake, seconds=1.0)
                continue
            name, payload, retain = self.pending[0]
            try:
                await link.publish(name, payload, retain=retain)
            except Exception as exc:  # any failure: keep the message and retry later
                log.debug("simulator.publish_failed", device_id=self.device_id, error=str(exc))
                await _wait_any(stop, seconds=1.0)
                continue
            if self.pending and self.pending[0][1] is payload:
                self.pending.popleft()
            self.counters.published += 1
            self.sent.set()

    # --- time ------------------------------------------------------------------------------
    async def ticker(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await _wait_any(stop, seconds=self.rng.uniform(0, 1))  # spread the fleet over the second
        next_at = loop.time()
        self._next_flush = self.clock() + self.rng.uniform(*self.options.batch_s)
        while not stop.is_set():
            self.tick()
            next_at += 1.0
            if next_at < loop.time() - 5:  # far behind (a suspended machine): skip ahead
                next_at = loop.time() + 1.0
            await _wait_any(stop, seconds=max(0.0, next_at - loop.time()))
        self.flush_telemetry()

    def tick(self) -> None:
        """One second: a sample, the events it caused, a batch when due, maybe a new session."""
        sample = self.model.tick(self.options.time_scale)
        session_id = self.model.session_id
        if self._batch and session_id != self._batch_session:
            self.flush_telemetry()
        self._batch_session = session_id
        self._batch.append({"t": self.now_ms(), **sample})
        self.counters.samples += 1
        self.flush_events()
        if session_id != self._last_session:  # the reported state names the session
            self._last_session = session_id
            self.send("state", self.state_payload(), retain=True)
        if self.clock() >= self._next_flush or len(self._batch) >= messages.MAX_SAMPLES_PER_MESSAGE:
            self.flush_telemetry()
        self._maybe_start_session()
        self.ota.tick()

    def flush_events(self) -> None:
        """Queue the session events and alerts the model produced, in order."""
        for kind, body in self.model.outbox:
            self.send(kind, body)
            if kind == "alert" and body["state"] == "raised":
                self.counters.alerts += 1
        self.model.outbox.clear()

    def flush_telemetry(self) -> None:
        if not self._batch:
            return
        self._telemetry_seq += 1
        name = "telemetry" if self.link is not None and self.link.up.is_set() else \
            "telemetry/backlog"
        body = messages.telemetry(self.now_ms(), seq=self._telemetry_seq, boot_id=self.boot_id,
                                  session_id=self._batch_session, samples=self._batch)
        self.pending.append((name, body, False))
        self.wake.set()
        self._batch = []
        self._next_flush = self.clock() + self.rng.uniform(*self.options.batch_s)

    # --- sessions --------------------------------------------------------------------------
    def _maybe_start_session(self) -> None:
        if self.model.busy or self._starting or self.ota.installing:
            return
        prepared = self.prepared
        if prepared is not None:
            if self.clock() >= prepared.start_at:
                self.prepared = None
                self.start_session(prepared.program, prepared.session_id)
            return
        chance = self.options.time_scale / max(self.options.session_every_s, 1.0)
        if self.rng.random() < chance:
            self.spawn(self._start_random_session())

    async def _start_random_session(self) -> None:
        self._starting = True
        try:
            program = await self.book.random_program(self.rng)
            if program is not None and not self.model.busy and self.prepared is None:
                self.start_session(program, None)
        finally:
            self._starting = False

    def start_session(self, program: Program, session_id: str | None) -> None:
        runner = self.model.start_session(program, session_id)
        self.counters.sessions += 1
        log.info("simulator.session_started", device_id=self.device_id,
                 session_id=runner.session_id, recipe=program.title)

    def prepare(self, program: Program, session_id: str | None) -> None:
        delay = self.rng.uniform(*self.options.start_after_prepare_s)
        self.prepared = Prepared(program, session_id, self.clock() + delay)

    # --- helpers ---------------------------------------------------------------------------
    async def access_token(self) -> str:
        if self._token is None or not self._token.fresh:
            self._token = await self.cloud.device_token(self.device_id,
                                                        self.identity.device_secret)
        return self._token.value

    def current_token(self) -> str | None:
        """The access token held now, if still fresh (no request)."""
        return self._token.value if self._token is not None and self._token.fresh else None

    def forget_token(self) -> None:
        self._token = None

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("simulator.task_failed", device_id=self.device_id, error=repr(exc))

    def on_down(self, name: str, payload: dict[str, Any] | None) -> None:
        from epicura.simulator.commands import handle_down

        handle_down(self, name, payload)


async def _wait_any(stop: asyncio.Event, *others: asyncio.Event, seconds: float) -> None:
    """Wait until `stop` (or another event) is set, or `seconds` pass."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (stop, *others)]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
