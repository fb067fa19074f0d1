"""Fleet analytics on known data, on PostgreSQL and the embedded default: each figure is the one
the rows inserted here add up to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from epicura.appliances.models import Appliance
from epicura.auth import service as auth_service
from epicura.kit.audit import AuditEvent
from epicura.sessions.models import CookingSession
from epicura.telemetry.models import NUMERIC_METRICS, telemetry_1h
from tests.support import API, STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio
ADMIN = "analytics-admin@example.com"
MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def admin_headers(svc: Service) -> dict[str, str]:
    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, ADMIN, STRONG_PASSWORD, "Analyst")
    reply = await svc.login(ADMIN)
    assert reply.status_code == 200, reply.text
    return bearer(reply.json())


def appliance(firmware: str, model: str, *, online: bool) -> Appliance:
    now = datetime.now(UTC)
    return Appliance(id=uuid.uuid4(), serial=f"AN-{uuid.uuid4().hex[:8]}", model=model,
                     hw_revision="rev-a", lifecycle="provisioned", factory_secret_hash="x" * 64,
                     firmware_version=firmware, channel="stable", tags=[], online=online,
                     settings={}, config_version=0, created_at=now, updated_at=now)


def cooking(appliance_id: uuid.UUID, recipe_id: uuid.UUID, status: str, at: datetime,
            duration_s: int | None) -> CookingSession:
    return CookingSession(id=uuid.uuid4(), appliance_id=appliance_id, recipe_id=recipe_id,
                          recipe_version=1, origin="app", status=status, step_elapsed_s=0.0,
                          last_seq=-1, duration_s=duration_s, created_at=at, updated_at=at)


def rollup(appliance_id: uuid.UUID, bucket: datetime, low: float, high: float, total: float,
           count: int) -> dict[str, Any]:
    row: dict[str, Any] = {"appliance_id": appliance_id, "bucket": bucket, "samples": count}
    for metric in NUMERIC_METRICS:
        row[f"{metric}_count"] = 0
    row.update(bowl_temp_c_min=low, bowl_temp_c_max=high, bowl_temp_c_sum=total,
               bowl_temp_c_count=count)
    return row


@pytest.fixture
async def fleet(api: Service) -> dict[str, Any]:
    a, b, c = (appliance("1.0.0", "epicura-1", online=True),
               appliance("1.0.0", "epicura-2", online=False),
               appliance("2.0.0", "epicura-1", online=False))
    soup, stew = uuid.uuid4(), uuid.uuid4()
    two_days, one_day = MIDNIGHT - timedelta(days=2), MIDNIGHT - timedelta(days=1)
    async with api.runtime.db.transaction() as session:
        session.add_all([a, b, c])
        await session.flush()
        session.add_all([
            cooking(a.id, soup, "completed", two_days + timedelta(hours=1), 100),
            cooking(b.id, soup, "aborted", two_days + timedelta(hours=23), None),
            cooking(c.id, stew, "completed", one_day + timedelta(minutes=5), 300),
            cooking(a.id, stew, "completed", MIDNIGHT - timedelta(days=9), 50),  # outside
        ])
        hour = two_days + timedelta(hours=3)
        await session.execute(telemetry_1h.insert(), [
            rollup(a.id, hour, 20, 80, 500, 10),
            rollup(b.id, hour, 30, 40, 70, 2),
            rollup(c.id, hour + timedelta(hours=1), 10, 90, 300, 5),
            rollup(c.id, MIDNIGHT - timedelta(days=9), -50, 500, 1, 1),  # outside
        ])
    return {"a": a.id, "b": b.id, "c": c.id, "soup": soup, "stew": stew,
            "admin": await admin_headers(api)}


def window(days: int = 3) -> dict[str, str]:
    return {"from": (MIDNIGHT - timedelta(days=days)).isoformat(), "to": MIDNIGHT.isoformat()}


async def test_sessions_per_day_lists_every_day_with_zeros(api: Service,
                                                           fleet: dict[str, Any]) -> None:
    reply = await api.client.get(f"{API}/admin/analytics/sessions",
                                 params={**window(), "group_by": "day"}, headers=fleet["admin"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["from"] == window()["from"].replace("+00:00", "Z")
    days = [(item["key"], item["sessions"], item["completed"]) for item in body["items"]]
    assert days == [((MIDNIGHT - timedelta(days=3)).strftime("%Y-%m-%d"), 0, 0),
                    ((MIDNIGHT - timedelta(days=2)).strftime("%Y-%m-%d"), 2, 1),
                    ((MIDNIGHT - timedelta(days=1)).strftime("%Y-%m-%d"), 1, 1)]
    assert body["items"][1]["mean_duration_s"] == 100.0


@pytest.mark.parametrize(("group_by", "expected"), [
    ("status", {"completed": 2, "aborted": 1}),
    ("firmware", {"1.0.0": 2, "2.0.0": 1}),
])
async def test_sessions_grouped(api: Service, fleet: dict[str, Any], group_by: str,
                                expected: dict[str, int]) -> None:
    reply = await api.client.get(f"{API}/admin/analytics/sessions",
                                 params={**window(), "group_by": group_by},
                                 headers=fleet["admin"])
    assert reply.status_code == 200, reply.text
    assert {item["key"]: item["sessions"] for item in reply.json()["items"]} == expected


async def test_sessions_by_recipe_names_the_recipe_ids(api: Service,
                                                       fleet: dict[str, Any]) -> None:
    reply = await api.client.get(f"{API}/admin/analytics/sessions",
                                 params={**window(), "group_by": "recipe"},
                                 headers=fleet["admin"])
    items = reply.json()["items"]
    assert [(item["key"], item["sessions"]) for item in items] == [
        (str(fleet["soup"]), 2), (str(fleet["stew"]), 1)]


@pytest.mark.parametrize(("group_by", "expected"), [
    ("firmware", {"1.0.0": (20.0, 80.0, 47.5, 12, 2), "2.0.0": (10.0, 90.0, 60.0, 5, 1)}),
    ("model", {"epicura-1": (10.0, 90.0, 53.333, 15, 2), "epicura-2": (30.0, 40.0, 35.0, 2, 1)}),
])
async def test_telemetry_aggregates_of_the_hourly_rollups(
        api: Service, fleet: dict[str, Any], group_by: str,
        expected: dict[str, tuple[float, float, float, int, int]]) -> None:
    reply = await api.client.get(f"{API}/admin/analytics/telemetry",
                                 params={**window(), "metric": "bowl_temp_c",
                                         "group_by": group_by}, headers=fleet["admin"])
    assert reply.status_code == 200, reply.text
    found = {item["key"]: (item["min"], item["max"], item["mean"], item["samples"],
                           item["appliances"]) for item in reply.json()["items"]}
    assert found == expected


async def test_overview_counts(api: Service, fleet: dict[str, Any]) -> None:
    reply = await api.client.get(f"{API}/admin/analytics/overview", headers=fleet["admin"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["appliances"], body["online_now"], body["users"]) == (3, 1, 1)
    assert body["sessions_7d"] == 3
    assert body["failed_jobs"] == 0 and body["open_alerts"] == 0


async def test_bad_windows_and_metrics_are_refused(api: Service, fleet: dict[str, Any]) -> None:
    url = f"{API}/admin/analytics/sessions"
    backwards = {"from": window()["to"], "to": window()["from"]}
    assert (await api.client.get(url, params=backwards, headers=fleet["admin"])).status_code == 422
    too_long = {"from": "2020-01-01T00:00:00Z", "to": "2022-01-01T00:00:00Z"}
    assert (await api.client.get(url, params=too_long, headers=fleet["admin"])).status_code == 422
    for extreme in ({"to": "0001-01-02T00:00:00Z"}, {"from": "9999-12-01T00:00:00Z"}):
        assert (await api.client.get(url, params=extreme,
                                     headers=fleet["admin"])).status_code == 422, extreme
    bad_metric = {"metric": "x_sum) FROM users; --"}
    reply = await api.client.get(f"{API}/admin/analytics/telemetry", params=bad_metric,
                                 headers=fleet["admin"])
    assert reply.status_code == 422


async def test_a_user_is_refused_analytics_and_audit(api: Service) -> None:
    tokens = await api.signed_up("analytics-cook@example.com")
    for path in ("analytics/overview", "analytics/sessions", "audit"):
        reply = await api.client.get(f"{API}/admin/{path}", headers=bearer(tokens))
        assert reply.status_code == 403, path


async def test_audit_filters_by_actor_action_and_time(api: Service) -> None:
    headers = await admin_headers(api)
    actor = uuid.uuid4()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    async with api.runtime.db.transaction() as session:
        for i, action in enumerate(["auth.login", "auth.logout", "admin.user.disabled"]):
            session.add(AuditEvent(at=base + timedelta(hours=i), action=action, actor_id=actor,
                                   actor_type="admin", details={"n": i}))
    url = f"{API}/admin/audit"
    for extreme in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        reply = await api.client.get(url, params={"from": extreme}, headers=headers)
        assert reply.status_code == 422, reply.text
    reply = await api.client.get(url, params={"actor": str(actor)}, headers=headers)
    assert [e["action"] for e in reply.json()["items"]] == [
        "admin.user.disabled", "auth.logout", "auth.login"]
    reply = await api.client.get(url, params={"actor": str(actor), "action": "auth."},
                                 headers=headers)
    assert [e["action"] for e in reply.json()["items"]] == ["auth.logout", "auth.login"]
    reply = await api.client.get(url, params={"actor": str(actor), "action": "auth.login"},
                                 headers=headers)
    assert [e["details"] for e in reply.json()["items"]] == [{"n": 0}]
    bounded = {"actor": str(actor), "from": (base + timedelta(hours=1)).isoformat(),
               "to": (base + timedelta(hours=2)).isoformat()}
    reply = await api.client.get(url, params=bounded, headers=headers)
    assert [e["action"] for e in reply.json()["items"]] == ["auth.logout"]
    first = await api.client.get(url, params={"actor": str(actor), "limit": 2}, headers=headers)
    rest = await api.client.get(url, params={"actor": str(actor), "limit": 2,
                                             "cursor": first.json()["next_cursor"]},
                                headers=headers)
    assert [e["action"] for e in rest.json()["items"]] == ["auth.login"]
    assert rest.json()["next_cursor"] is None
