"""From outbox rows to notifications (PostgreSQL + Redis): only `user:` channels count, a row
relayed twice has one effect, repeats collapse, the `notification` event rides the outbox without
looping, texts follow the user's language, quiet hours hold back a normal push but not a safety
alert, opt-outs mute a category but not safety or security."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from epicura.kit import clock
from epicura.notifications import rules
from epicura.realtime import outbox
from tests.notifications.conftest import (
    APNS_TOKEN,
    FCM_TOKEN,
    add_token,
    cook,
    inbox_rows,
    push_jobs,
    record_events,
    relay,
)
from tests.support import API, STRONG_PASSWORD, Service

pytestmark = pytest.mark.anyio


def awaiting(user_id: uuid.UUID, session_id: str, step: int,
             prompt: str = "Add the onions") -> list[tuple[str, str, dict[str, object]]]:
    data: dict[str, object] = {"session_id": session_id, "step_index": step, "prompt": prompt}
    return [(f"session:{session_id}", "session.awaiting_user", data),
            (f"user:{user_id}", "session.awaiting_user", data)]


def alert(user_id: uuid.UUID, code: str, severity: str,
          state: str = "raised") -> list[tuple[str, str, dict[str, object]]]:
    appliance_id = str(uuid.uuid4())
    data: dict[str, object] = {"alert_id": str(uuid.uuid4()), "appliance_id": appliance_id,
                               "code": code, "severity": severity, "state": state}
    return [(f"appliance:{appliance_id}", "alert", data), (f"user:{user_id}", "alert", data)]


async def notification_events(svc: Service, user_id: uuid.UUID) -> list[dict[str, object]]:
    async with svc.runtime.db.sessions() as session:
        rows = (await session.scalars(select(outbox.OutboxEvent).where(
            outbox.OutboxEvent.channel == f"user:{user_id}",
            outbox.OutboxEvent.type == "notification").order_by(outbox.OutboxEvent.id))).all()
    return [row.data for row in rows]


async def test_one_notification_per_user_row_however_often_it_is_relayed(svc: Service) -> None:
    ann = await cook(svc, "ann@example.com")
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    await add_token(svc, ann, "apns", APNS_TOKEN)
    session_id = str(uuid.uuid4())
    await record_events(svc, *awaiting(ann.id, session_id, 2))
    await relay(svc)  # two rows, then the `notification` row they caused

    [entry] = await inbox_rows(svc, ann.id)
    assert (entry.kind, entry.category, entry.push) == ("awaiting_user", "cooking", "queued")
    assert (entry.title, entry.body) == ("Your Epicura needs you", "Step 3: Add the onions")
    assert len(await push_jobs(svc)) == 2  # one per token

    # The same rows again (a relay that crashed after publishing, a device re-sending the step):
    # the same inbox entry, no new push jobs, no new live event.
    await record_events(svc, *awaiting(ann.id, session_id, 2))
    await relay(svc)
    assert len(await inbox_rows(svc, ann.id)) == 1
    assert len(await push_jobs(svc)) == 2
    [event] = await notification_events(svc, ann.id)
    assert event["id"] == str(entry.id) and event["body"] == "Step 3: Add the onions"

    # The next step is a new notification; the session's end another.
    await record_events(svc, *awaiting(ann.id, session_id, 3, ""),
                        (f"user:{ann.id}", "session.finished",
                         {"session_id": session_id, "status": "completed", "summary": {}}))
    await relay(svc)
    entries = await inbox_rows(svc, ann.id)
    assert [e.kind for e in entries] == ["awaiting_user", "awaiting_user", "session_completed"]
    assert entries[1].body == "Step 4 is waiting for you."
    assert len(await push_jobs(svc)) == 6
    assert len(await notification_events(svc, ann.id)) == 3


async def test_alerts_count_once_and_only_when_raised(svc: Service) -> None:
    ann = await cook(svc, "ann@example.com", locale="de-AT")
    raised = alert(ann.id, "overtemp", "critical")
    await record_events(svc, *raised)
    await record_events(svc, *alert(ann.id, "overtemp", "critical", state="cleared"))
    await record_events(svc, (f"user:{ann.id}", "session.updated", {"session_id": "x"}))
    await relay(svc)
    [entry] = await inbox_rows(svc, ann.id)
    assert (entry.kind, entry.urgent, entry.push) == ("alert", True, "none")  # no token
    assert entry.title == "Warnung: Überhitzung"  # the user's language
    assert entry.params["alert_id"] == raised[0][2]["alert_id"]


async def test_quiet_hours_hold_back_a_normal_push_but_not_a_safety_alert(svc: Service) -> None:
    ann = await cook(svc, "ann@example.com", timezone="Europe/Berlin")
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    reply = await svc.client.put(f"{API}/push/preferences", headers=ann.headers, json={
        "quiet_hours": {"start": "22:00", "end": "07:00"}})
    assert reply.status_code == 200
    # 23:30 in Berlin (CET, UTC+1) on a winter night: quiet until 07:00 local = 06:00 UTC.
    night = datetime(2026, 1, 14, 22, 30, tzinfo=UTC)
    with clock.frozen(night):
        await record_events(svc, *awaiting(ann.id, str(uuid.uuid4()), 0))
        await record_events(svc, *alert(ann.id, "overtemp", "warning"))
        await record_events(svc, *alert(ann.id, "overweight", "warning"))
        await relay(svc)
    entries = {e.params.get("code", e.kind): e for e in await inbox_rows(svc, ann.id)}
    assert entries["awaiting_user"].push == "held"
    assert entries["overtemp"].push == "queued" and entries["overtemp"].urgent
    assert entries["overweight"].push == "held" and not entries["overweight"].urgent
    jobs_by_id = {job.payload["notification_id"]: job for job in await push_jobs(svc)}
    morning = datetime(2026, 1, 15, 6, 0, tzinfo=UTC)
    assert jobs_by_id[str(entries["awaiting_user"].id)].run_at == morning
    assert jobs_by_id[str(entries["overweight"].id)].run_at == morning
    assert jobs_by_id[str(entries["overtemp"].id)].run_at == night

    # In the daytime nothing is held.
    with clock.frozen(datetime(2026, 1, 15, 12, 0, tzinfo=UTC)):
        await record_events(svc, *awaiting(ann.id, str(uuid.uuid4()), 0))
        await relay(svc)
    assert (await inbox_rows(svc, ann.id))[-1].push == "queued"


def test_quiet_hours_follow_daylight_saving_and_same_day_windows() -> None:
    quiet = rules.QuietHours.parse("22:00", "07:00", "Europe/Berlin")
    assert quiet is not None
    summer_night = datetime(2026, 7, 1, 21, 0, tzinfo=UTC)  # 23:00 CEST
    assert quiet.ends_after(summer_night) == datetime(2026, 7, 2, 5, 0, tzinfo=UTC)
    early = datetime(2026, 7, 2, 3, 0, tzinfo=UTC)  # 05:00 CEST, same quiet night
    assert quiet.ends_after(early) == datetime(2026, 7, 2, 5, 0, tzinfo=UTC)
    assert quiet.ends_after(datetime(2026, 7, 2, 5, 0, tzinfo=UTC)) is None  # 07:00: over
    lunch = rules.QuietHours.parse("12:00", "13:30", "UTC")
    assert lunch is not None
    assert lunch.ends_after(datetime(2026, 7, 2, 12, 15, tzinfo=UTC)) == \
        datetime(2026, 7, 2, 13, 30, tzinfo=UTC)
    assert lunch.ends_after(datetime(2026, 7, 2, 14, 0, tzinfo=UTC)) is None
    assert rules.QuietHours.parse("08:00", "08:00", "UTC") is None


async def test_opt_outs_mute_a_category_but_never_safety_or_security(svc: Service) -> None:
    ann = await cook(svc, "ann@example.com")
    await add_token(svc, ann, "apns", APNS_TOKEN)
    reply = await svc.client.put(f"{API}/push/preferences", headers=ann.headers, json={
        "categories": {"cooking": False, "alerts": False}})
    assert reply.status_code == 200
    await record_events(svc, *awaiting(ann.id, str(uuid.uuid4()), 0))
    await record_events(svc, *alert(ann.id, "lid_open_while_running", "warning"))
    await record_events(svc, *alert(ann.id, "sensor_fault", "warning"))
    await relay(svc)
    changed = await svc.client.post(f"{API}/users/me/password", headers=ann.headers, json={
        "current_password": STRONG_PASSWORD, "new_password": STRONG_PASSWORD + "!x"})
    assert changed.status_code == 204, changed.text
    pushes = {e.params.get("code", e.kind): e.push for e in await inbox_rows(svc, ann.id)}
    assert pushes == {"awaiting_user": "off", "lid_open_while_running": "queued",
                      "sensor_fault": "off", "security_password_changed": "queued"}
    # Every entry is in the inbox and became a live event, muted or not.
    assert len(await notification_events(svc, ann.id)) == 4
    assert len(await push_jobs(svc)) == 2


async def test_a_reused_refresh_token_notifies_its_user(svc: Service) -> None:
    tokens = await svc.signed_up("ann@example.com")
    first = await svc.client.post(f"{API}/auth/refresh",
                                  json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    with clock.frozen(clock.utcnow() + timedelta(seconds=30)):  # past the grace
        reused = await svc.client.post(f"{API}/auth/refresh",
                                       json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    login = await svc.login("ann@example.com")
    me = (await svc.client.get(f"{API}/users/me", headers={
        "Authorization": f"Bearer {login.json()['access_token']}"})).json()
    [entry] = await inbox_rows(svc, uuid.UUID(me["id"]))
    assert (entry.kind, entry.urgent) == ("security_token_reuse", True)
