"""Property tests (checklist T38): no update check ever offers a forbidden release, and a check
offers the newest allowed one when there is one.

First over the pure rules (`eligibility.choose`, hundreds of random fleets, releases and
rollouts), then end to end: random fleets, releases and rollouts written to PostgreSQL, each
appliance asking `GET /device/firmware/check` with its own device token. The oracle here
re-states domain.md's rules on its own (its own version order and bucket hash)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from epicura.appliances.access import issue_device_token
from epicura.appliances.models import Appliance
from epicura.config import Settings
from epicura.kit import clock
from epicura.ota import eligibility
from epicura.ota.models import FirmwareRelease, Rollout
from tests.conftest import truncate_tables
from tests.ota.conftest import appliance_row
from tests.support import API, Mailbox, Service, bearer, running

pytestmark = pytest.mark.anyio  # harmless: the end-to-end test is sync and runs its own loop

VERSIONS = ["0.9.0", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0-beta", "2.0.0"]
HW = ["rev-a", "rev-b"]
CHANNELS = ["stable", "beta"]
TAGS = ["eu", "lab"]
STATES = ["active", "completed", "draft", "paused", "halted", "aborted"]


def order(version: str) -> tuple[int, int, int, int, str]:
    """Semver precedence for the versions above (a pre-release sorts below its release)."""
    core, _, pre = version.partition("-")
    major, minor, patch = (int(p) for p in core.split("."))
    return major, minor, patch, 0 if pre else 1, pre


def bucket(rollout_id: uuid.UUID, device_id: uuid.UUID) -> int:
    return int.from_bytes(hashlib.sha256(f"{rollout_id}:{device_id}".encode()).digest()[:8],
                          "big") % 10_000


@dataclass(frozen=True)
class DeviceSpec:
    id: uuid.UUID
    current: str
    hw: str
    channel: str
    tags: tuple[str, ...]
    busy: bool


@dataclass(frozen=True)
class ReleaseSpec:
    id: uuid.UUID
    version: str
    channel: str
    hw: tuple[str, ...]
    min_from: str | None
    status: str


@dataclass(frozen=True)
class RolloutSpec:
    id: uuid.UUID
    release: ReleaseSpec
    state: str
    channel: str
    hw: tuple[str, ...]
    tags: tuple[str, ...]
    percents: tuple[float, ...]
    current_stage: int


def sub(items: list[str], min_size: int = 0) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(items), min_size=min_size, unique=True).map(tuple)


def often(value: Any, other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `value`, sometimes a draw of `other` (which may be `value` too). Hypothesis favours
    the ends of a range, so the rarer branch sits in its middle."""
    return st.integers(0, 6).flatmap(lambda i: other if i in (3, 4) else st.just(value))


@st.composite
def world(draw: st.DrawFn) -> tuple[list[DeviceSpec], list[RolloutSpec]]:
    """Random releases and rollouts, and a fleet drawn mostly close to them (the same channel,
    hardware and tags, older firmware), so offers and each reason for refusing one all occur."""
    versions = draw(st.lists(st.sampled_from(VERSIONS), min_size=1, max_size=4, unique=True))
    rollouts = []
    for version in versions:
        floor = draw(st.none() | st.sampled_from([v for v in VERSIONS
                                                  if order(v) <= order(version)]))
        release = ReleaseSpec(draw(st.uuids()), version, draw(st.sampled_from(CHANNELS)),
                              draw(sub(HW, 1)), floor, draw(often("ready", st.just("yanked"))))
        cuts = sorted(draw(st.lists(often(10_000, st.integers(1, 10_000)), min_size=1,
                                    max_size=4, unique=True)))
        rollouts.append(RolloutSpec(
            draw(st.uuids()), release, draw(often("active", st.sampled_from(STATES))),
            draw(often(release.channel, st.sampled_from(CHANNELS))),
            draw(often(release.hw, sub(HW, 1))), draw(often((), sub(TAGS))),
            tuple(c / 100 for c in cuts),
            draw(often(len(cuts) - 1, st.integers(0, len(cuts) - 1)))))
    devices = []
    for _ in range(draw(st.integers(1, 6))):
        near = draw(st.sampled_from(rollouts))
        older = [v for v in VERSIONS if order(v) < order(near.release.version)] or VERSIONS
        devices.append(DeviceSpec(
            draw(st.uuids()), draw(often(draw(st.sampled_from(older)), st.sampled_from(VERSIONS))),
            draw(often(near.hw[0], st.sampled_from(HW))),
            draw(often(near.channel, st.sampled_from(CHANNELS))),
            draw(often(tuple(sorted(set(near.tags) | {"eu"})), sub(TAGS))),
            draw(often(False, st.booleans()))))
    return devices, rollouts


def allowed(device: DeviceSpec, rollout: RolloutSpec) -> bool:
    """domain.md, stated directly."""
    release = rollout.release
    if device.busy or release.status != "ready":
        return False
    if order(release.version) <= order(device.current):
        return False
    if release.min_from is not None and order(device.current) < order(release.min_from):
        return False
    if not (device.channel == release.channel == rollout.channel):
        return False
    if device.hw not in release.hw or device.hw not in rollout.hw:
        return False
    if not set(rollout.tags) <= set(device.tags):
        return False
    if rollout.state == "active":
        open_share = rollout.percents[rollout.current_stage]
    elif rollout.state == "completed":
        open_share = rollout.percents[-1]
    else:
        return False
    return bucket(rollout.id, device.id) < round(open_share * 100)


def expected(device: DeviceSpec, rollouts: list[RolloutSpec]) -> set[str]:
    """The versions a check may offer: the newest allowed one (versions are unique here)."""
    fitting = [r.release.version for r in rollouts if allowed(device, r)]
    return {max(fitting, key=order)} if fitting else set()


def device_facts(device: DeviceSpec) -> eligibility.DeviceFacts:
    return eligibility.DeviceFacts(device.id, device.current, device.hw, device.channel,
                                   frozenset(device.tags), device.busy)


def rollout_facts(rollout: RolloutSpec) -> eligibility.RolloutFacts:
    r = rollout.release
    return eligibility.RolloutFacts(
        rollout.id, rollout.state, rollout.channel, rollout.hw, rollout.tags, rollout.percents,
        rollout.current_stage, eligibility.ReleaseFacts(r.id, r.version, r.channel, r.hw,
                                                        r.min_from, r.status))


@settings(max_examples=600, deadline=None)
@given(world())
def test_choose_offers_exactly_the_newest_allowed_release(
        fleet_and_rollouts: tuple[list[DeviceSpec], list[RolloutSpec]]) -> None:
    devices, rollouts = fleet_and_rollouts
    candidates = [rollout_facts(r) for r in rollouts]
    for device in devices:
        chosen = eligibility.choose(device_facts(device), candidates, {}, clock.utcnow(), 3)
        got = set() if chosen is None else {chosen.release.version}
        event("an offer" if got else "none")
        assert got == expected(device, rollouts), (device, rollouts)


# --- end to end ----------------------------------------------------------------------------------

class App:
    def __init__(self, portal: BlockingPortal, service: Service, conn: asyncpg.Connection) -> None:
        self.portal, self.service, self.conn = portal, service, conn


@pytest.fixture
def app(pg_settings: Settings, smtp: tuple[int, Mailbox], pg_database: str) -> Iterator[App]:
    with start_blocking_portal(backend="asyncio") as portal:
        conn = portal.call(asyncpg.connect, pg_database)
        try:
            with portal.wrap_async_context_manager(running(pg_settings, smtp[1])) as service:
                yield App(portal, service, conn)
        finally:
            portal.call(truncate_tables, conn)


async def _scenario(app: App, devices: list[DeviceSpec],
                    rollouts: list[RolloutSpec]) -> dict[uuid.UUID, httpx2.Response]:
    rt = app.service.runtime
    now = clock.utcnow()
    rows: list[Appliance] = []
    async with rt.db.transaction() as session:
        for d in devices:
            row = appliance_row(id=d.id, hw_revision=d.hw, firmware_version=d.current,
                                channel=d.channel, tags=list(d.tags),
                                current_session_id=uuid.uuid4() if d.busy else None)
            session.add(row)
            rows.append(row)
        for r in rollouts:
            rel = r.release
            session.add(FirmwareRelease(
                id=rel.id, version=rel.version, channel=rel.channel, hw_revisions=list(rel.hw),
                min_from_version=rel.min_from, size=1, sha256="0" * 64, signature="s",
                key_id="0" * 16, manifest="e30=", notes="", status=rel.status,
                object_key=f"firmware/{rel.id}/firmware.bin", created_at=now, updated_at=now))
        await session.flush()
        for r in rollouts:
            session.add(Rollout(
                id=r.id, release_id=r.release.id, state=r.state, channel=r.channel,
                hw_revisions=list(r.hw), tags=list(r.tags),
                stages=[{"percent": p, "soak_s": 0, "success_threshold": 1,
                         "failure_threshold": 1} for p in r.percents],
                current_stage=r.current_stage if r.state != "draft" else -1,
                stage_started_at=now, revision=1, created_at=now, updated_at=now))
    replies = {}
    for row in rows:
        token, _ttl = issue_device_token(rt, row)
        replies[row.id] = await app.service.client.get(
            f"{API}/device/firmware/check", headers=bearer(token),
            params={"current": next(d.current for d in devices if d.id == row.id)})
    await truncate_tables(await asyncpg.connect(str(rt.settings.database_url)))
    return replies


def test_no_check_ever_offers_a_forbidden_release(app: App) -> None:
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(world())
    def scenario(fleet_and_rollouts: tuple[list[DeviceSpec], list[RolloutSpec]]) -> None:
        devices, rollouts = fleet_and_rollouts
        # A draft rollout has not started: it has no open stage, whatever its fields say.
        rollouts = [r if r.state != "draft" else RolloutSpec(
            r.id, r.release, r.state, r.channel, r.hw, r.tags, r.percents, 0) for r in rollouts]
        replies = app.portal.call(_scenario, app, devices, rollouts)
        for device in devices:
            reply = replies[device.id]
            want = expected(device, rollouts)
            event("an offer" if want else "none")
            if not want:
                assert reply.status_code == 204, (device, rollouts, reply.text)
                continue
            assert reply.status_code == 200, (device, rollouts, reply.text)
            body: dict[str, Any] = reply.json()
            assert {body["version"]} == want
            chosen = next(r for r in rollouts if r.id == uuid.UUID(body["rollout_id"]))
            assert allowed(device, chosen) and str(chosen.release.id) == body["release_id"]

    scenario()
