"""The owner's routes: reading with status, changing name/channel/settings (desired config on
`down/config`, retained), unpairing, alerts; another user's appliance is a 404 everywhere, and
device and user tokens are each refused on the other's routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from epicura.appliances import reported
from epicura.kit import clock
from tests.appliances.conftest import (
    Factory,
    assert_problem,
    audit_actions,
    down_messages,
    user,
)
from tests.support import API, Service

pytestmark = pytest.mark.anyio

SPEC_FIELDS = {"id", "serial", "name", "model", "hw_revision", "firmware_version", "channel",
               "online", "last_seen_at", "state", "current_session_id", "paired_at"}


async def report_state(svc: Service, device_id: str, session_id: str | None = None) -> None:
    body = {"firmware_version": "1.4.2", "hw_revision": "rev-a", "channel": "stable",
            "capabilities": {}, "settings": {}, "storage_free_mb": 512, "wifi_rssi": -60,
            "session_id": session_id}
    async with svc.runtime.db.transaction() as session:
        await reported.apply_state(session, uuid.UUID(device_id), body, 1, clock.utcnow())


async def test_owner_reads_status(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-owner-read@example.com")
    device, _ = await factory.paired(cook)
    cooking = str(uuid.uuid4())
    await report_state(svc, device.id, cooking)
    reply = await svc.client.get(f"{API}/appliances/{device.id}", headers=cook)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) >= SPEC_FIELDS
    assert body["online"] is True and body["current_session_id"] == cooking
    assert body["state"]["wifi_rssi"] == -60 and body["firmware_version"] == "1.4.2"
    etag = reply.headers["etag"]
    cached = await svc.client.get(f"{API}/appliances/{device.id}",
                                  headers={**cook, "If-None-Match": etag})
    assert cached.status_code == 304
    # Silent for more than 90 s: offline, even before the sweep marks it so.
    with clock.frozen(datetime.now(UTC) + timedelta(seconds=95)):
        later = await svc.client.get(f"{API}/appliances/{device.id}", headers=cook)
        assert later.json()["online"] is False
        listed = await svc.client.get(f"{API}/appliances", headers=cook)
        assert listed.json()["items"][0]["online"] is False


async def test_settings_become_retained_desired_config(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-owner-settings@example.com")
    device, _ = await factory.paired(cook)
    url = f"{API}/appliances/{device.id}"
    settings = {"units": "imperial", "locale": "en-US", "timezone": "America/New_York",
                "sounds": False, "allow_remote_pause": True,
                "ota_window": {"start": "02:00", "end": "05:00"}}
    reply = await svc.client.patch(url, json={"name": "Island", "channel": "beta",
                                              "settings": settings}, headers=cook)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["name"], body["channel"], body["config_version"]) == ("Island", "beta", 1)
    assert body["settings"] == settings
    [config] = await down_messages(svc, device.id, "config")
    assert config["retain"] is True
    assert config["topic"] == f"epicura/v1/{device.id}/down/config"
    assert config["payload"] == {"version": 1, "settings": settings}
    # The same settings again change nothing; `null` removes one; the rest stays.
    same = await svc.client.patch(url, json={"settings": {"units": "imperial"}}, headers=cook)
    assert same.json()["config_version"] == 1
    removed = await svc.client.patch(url, json={"settings": {"sounds": None}}, headers=cook)
    assert removed.json()["config_version"] == 2 and "sounds" not in removed.json()["settings"]
    assert len(await down_messages(svc, device.id, "config")) == 2
    fetched = await svc.client.get(f"{API}/device/config", headers=device.headers)
    assert fetched.json()["version"] == 2 and fetched.json()["settings"]["units"] == "imperial"
    etag = fetched.headers["etag"]
    again = await svc.client.get(f"{API}/device/config",
                                 headers={**device.headers, "If-None-Match": etag})
    assert again.status_code == 304


async def test_update_validation_and_preconditions(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-owner-validate@example.com")
    device, _ = await factory.paired(cook)
    url = f"{API}/appliances/{device.id}"
    for body in ({"channel": "nightly"}, {"settings": {"timezone": "Mars/Olympus"}},
                 {"settings": {"ota_window": {"start": "25:00", "end": "05:00"}}},
                 {"settings": {"heater": True}}, {"owner_id": str(uuid.uuid4())},
                 {"name": ""}, {"name": "x" * 81}, {"settings": {"units": "furlongs"}}):
        assert_problem(await svc.client.patch(url, json=body, headers=cook), 422,
                       "validation_failed")
    current = await svc.client.get(url, headers=cook)
    stale = await svc.client.patch(url, json={"name": "A"},
                                   headers={**cook, "If-Match": '"not-the-etag"'})
    assert_problem(stale, 412, "version_conflict")
    fresh = await svc.client.patch(url, json={"name": "A"},
                                   headers={**cook, "If-Match": current.headers["etag"]})
    assert fresh.status_code == 200 and fresh.headers["etag"] != current.headers["etag"]


async def test_unpair_tells_the_appliance_and_nothing_else(svc: Service,
                                                           factory: Factory) -> None:
    cook = await user(svc, "test-owner-unpair@example.com")
    device, _ = await factory.paired(cook)
    kept, _ = await factory.paired(cook)
    await svc.client.patch(f"{API}/appliances/{device.id}",
                           json={"settings": {"units": "metric"}}, headers=cook)
    reply = await svc.client.delete(f"{API}/appliances/{device.id}", headers=cook)
    assert reply.status_code == 204
    [command] = await down_messages(svc, device.id, "cmd")
    payload = command["payload"]
    assert payload["name"] == "unpair" and payload["args"] == {}
    assert uuid.UUID(payload["request_id"]) and payload["expires_at"]
    assert command["expiry_s"] and command["retain"] is False
    # The old owner's desired config is cleared from the broker (empty retained message).
    assert (await down_messages(svc, device.id, "config"))[-1]["payload"] is None
    config = (await svc.client.get(f"{API}/device/config", headers=device.headers)).json()
    assert config["paired"] is False and config["settings"] == {}
    assert "appliance.unpair" in await audit_actions(svc, device.id)
    # Nothing else of the user's is touched: still signed in, the other appliance still theirs.
    assert (await svc.client.get(f"{API}/users/me", headers=cook)).status_code == 200
    listed = await svc.client.get(f"{API}/appliances", headers=cook)
    assert [a["id"] for a in listed.json()["items"]] == [kept.id]
    assert_problem(await svc.client.delete(f"{API}/appliances/{device.id}", headers=cook),
                   404, "not_found")


async def test_alerts_paged_and_filtered(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-owner-alerts@example.com")
    device = await factory.device()
    device_uuid = uuid.UUID(device.id)
    start = datetime.now(UTC)

    async def alert(alert_id: str, state: str, at: datetime) -> None:
        body = {"alert_id": alert_id, "code": "lid_open", "severity": "warning", "state": state}
        async with svc.runtime.db.transaction() as session:
            await reported.apply_alert(session, device_uuid, body, at)

    await alert("before-pairing", "raised", start - timedelta(minutes=5))
    await factory.paired(cook, device)
    start = datetime.now(UTC)
    for n in range(3):
        await alert(f"a{n}", "raised", start + timedelta(seconds=n + 1))
    await alert("a0", "cleared", start + timedelta(seconds=10))
    url = f"{API}/appliances/{device.id}/alerts"
    page = await svc.client.get(url, params={"limit": 2}, headers=cook)
    assert page.status_code == 200
    first = page.json()
    assert [a["alert_id"] for a in first["items"]] == ["a2", "a1"]
    rest = await svc.client.get(url, params={"limit": 2, "cursor": first["next_cursor"]},
                                headers=cook)
    assert [a["alert_id"] for a in rest.json()["items"]] == ["a0"]  # not the old owner's
    assert rest.json()["next_cursor"] is None
    cleared = await svc.client.get(url, params={"state": "cleared"}, headers=cook)
    assert [(a["alert_id"], a["state"]) for a in cleared.json()["items"]] == [("a0", "cleared")]
    assert_problem(await svc.client.get(url, params={"cursor": "!!"}, headers=cook), 400,
                   "invalid_cursor")
    assert_problem(await svc.client.get(url, params={"state": "open"}, headers=cook), 422,
                   "validation_failed")


async def test_another_users_appliance_is_a_404_everywhere(svc: Service,
                                                           factory: Factory) -> None:
    owner = await user(svc, "test-owner-bola-owner@example.com")
    other = await user(svc, "test-owner-bola-other@example.com")
    device, _ = await factory.paired(owner)
    sent = await svc.client.post(f"{API}/appliances/{device.id}/commands",
                                 json={"name": "identify"}, headers=owner)
    request_id = sent.json()["request_id"]
    base = f"{API}/appliances/{device.id}"
    missing = f"{API}/appliances/{uuid.uuid4()}"
    for url in (base, missing):
        calls = [
            svc.client.get(url, headers=other),
            svc.client.patch(url, json={"name": "Mine"}, headers=other),
            svc.client.delete(url, headers=other),
            svc.client.post(f"{url}/commands", json={"name": "identify"}, headers=other),
            svc.client.post(f"{url}/commands", json={"name": "unpair"}, headers=other),
            svc.client.get(f"{url}/commands/{request_id}", headers=other),
            svc.client.get(f"{url}/alerts", headers=other),
        ]
        bodies = [assert_problem(await call, 404, "not_found") for call in calls]
        assert all(body["title"] == "No such appliance" for body in bodies)
    # Nothing was sent on the other user's behalf, and nothing changed.
    assert len(await down_messages(svc, device.id, "cmd")) == 1
    mine = (await svc.client.get(base, headers=owner)).json()
    assert mine["name"] == "epicura-1"


async def test_tokens_are_refused_on_each_others_routes(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-owner-tokens@example.com")
    device, _ = await factory.paired(cook)
    for method, url in (("GET", f"{API}/appliances"), ("GET", f"{API}/appliances/{device.id}"),
                        ("GET", f"{API}/users/me"), ("GET", f"{API}/admin/appliances")):
        reply = await svc.client.request(method, url, headers=device.headers)
        assert_problem(reply, 401, "unauthorized")
    for method, url in (("GET", f"{API}/device/config"), ("POST", f"{API}/device/claim-codes")):
        reply = await svc.client.request(method, url, headers=cook)
        assert_problem(reply, 401, "unauthorized")
        anonymous = await svc.client.request(method, url)
        assert_problem(anonymous, 401, "unauthorized")
