"""Pushes end to end against the local FCM and APNs servers (PostgreSQL + Redis): one push per
step and one for the finish on each provider, the right payloads and headers, one OAuth2 exchange
and one APNs provider token for many sends, dead tokens deleted at their first failed send,
Retry-After honoured, malformed replies retried, permanent errors dead-lettered and retried from
the admin API, quiet hours holding back a normal push but not an overtemperature alert."""

from __future__ import annotations

import uuid
from datetime import timedelta

import orjson
import pytest

from epicura.auth import service as auth_service
from epicura.kit import clock, jobs
from tests.appliances.conftest import assert_problem
from tests.notifications.conftest import (
    APNS_TOKEN,
    FCM_TOKEN,
    Fakes,
    add_token,
    cook,
    inbox_rows,
    push_jobs,
    record_events,
    relay,
)
from tests.notifications.fakes import FCM_ERROR_TYPE
from tests.notifications.test_triggers import alert, awaiting
from tests.support import API, STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio


def finished(user_id: uuid.UUID, session_id: str) -> tuple[str, str, dict[str, object]]:
    return (f"user:{user_id}", "session.finished",
            {"session_id": session_id, "status": "completed", "summary": {"energy_wh": 120}})


def fcm_error(status: int, canonical: str, code: str, message: str = "") -> bytes:
    return orjson.dumps({"error": {"code": status, "message": message, "status": canonical,
                                   "details": [{"@type": FCM_ERROR_TYPE, "errorCode": code}]}})


async def test_one_push_per_step_and_one_for_the_finish_on_each_provider(
        svc: Service, fakes: Fakes) -> None:
    ann = await cook(svc, "ann@example.com")
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    await add_token(svc, ann, "apns", APNS_TOKEN, locale="de")
    sid = str(uuid.uuid4())
    for _ in range(2):  # the appliance repeats itself; the relay runs twice
        await record_events(svc, *awaiting(ann.id, sid, 0), *awaiting(ann.id, sid, 1))
        await relay(svc)
    await record_events(svc, finished(ann.id, sid))
    await relay(svc)
    assert await svc.run_jobs() == 6
    assert await svc.run_jobs() == 0

    android = fakes.fcm.sent_to(FCM_TOKEN)
    iphone = fakes.apns.sent_to(APNS_TOKEN)
    assert len(android) == len(iphone) == 3
    step = android[0].body
    assert step["notification"] == {"title": "Your Epicura needs you",
                                    "body": "Step 1: Add the onions"}
    assert step["android"]["collapse_key"] == f"session:{sid}:step:0"
    assert step["android"]["priority"] == "HIGH"
    assert step["data"]["session_id"] == sid and step["data"]["kind"] == "awaiting_user"
    assert step["data"]["link"] == f"epicura://sessions/{sid}"
    assert android[2].body["notification"]["title"] == "Your dish is ready"
    assert "energy_wh" not in orjson.dumps(android[2].body).decode()  # ids, not details

    first = iphone[0]
    assert first.body["aps"]["alert"] == {"title": "Dein Epicura braucht dich",
                                          "body": "Schritt 1: Add the onions"}  # token locale
    assert first.headers["apns-topic"] == fakes.apns.topic
    assert first.headers["apns-push-type"] == "alert"
    assert first.headers["apns-priority"] == "10"
    assert first.headers["apns-collapse-id"] == f"session:{sid}:step:0"
    assert int(first.headers["apns-expiration"]) > clock.utcnow().timestamp()
    assert {r.headers["apns-id"] for r in iphone} == {
        r.body["data"]["notification_id"] for r in android}  # one id per notification
    assert first.http_version == "2"

    assert fakes.fcm.exchanges == 1  # the access token is cached
    assert len(fakes.apns.provider_tokens) == 1  # the provider token is reused
    assert fakes.apns.connections == 1  # over one kept HTTP/2 connection
    assert {job.state for job in await push_jobs(svc)} == {jobs.SUCCEEDED}


async def test_an_invalid_token_disappears_after_its_first_failed_send(
        svc: Service, fakes: Fakes) -> None:
    ann = await cook(svc, "ann@example.com")
    dead_fcm, dead_apns, bad_apns = FCM_TOKEN + "dead", "cd" * 32, "ef" * 32
    fakes.fcm.unregistered.add(dead_fcm)
    fakes.apns.unregistered.add(dead_apns)
    fakes.apns.script[bad_apns] = [(400, {}, b'{"reason":"BadDeviceToken"}')]
    for platform, token in (("fcm", dead_fcm), ("apns", dead_apns), ("apns", bad_apns),
                            ("fcm", FCM_TOKEN)):
        await add_token(svc, ann, platform, token)
    await record_events(svc, *awaiting(ann.id, str(uuid.uuid4()), 0))
    await relay(svc)
    assert await svc.run_jobs() == 4
    left = (await svc.client.get(f"{API}/push/tokens", headers=ann.headers)).json()
    assert [t["platform"] for t in left] == ["fcm"]
    assert len(fakes.fcm.sent_to(FCM_TOKEN)) == 1
    assert {job.state for job in await push_jobs(svc)} == {jobs.SUCCEEDED}  # nothing to retry

    await record_events(svc, *awaiting(ann.id, str(uuid.uuid4()), 0))
    await relay(svc)
    assert await svc.run_jobs() == 1  # only the live token is tried again


async def test_throttling_and_server_errors_are_retried_after_retry_after(
        svc: Service, fakes: Fakes) -> None:
    ann = await cook(svc, "ann@example.com")
    garbled = FCM_TOKEN + "garbled"
    fakes.fcm.script[FCM_TOKEN] = [
        (503, {"Retry-After": "120"}, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"))]
    fakes.fcm.script[garbled] = [(500, {}, b"<html>Internal error</html>"),
                                 (200, {}, b"{not json")]
    fakes.apns.script[APNS_TOKEN] = [(429, {"Retry-After": "60"}, b'{"reason":"TooManyRequests"}')]
    for platform, token in (("fcm", FCM_TOKEN), ("fcm", garbled), ("apns", APNS_TOKEN)):
        await add_token(svc, ann, platform, token)
    await record_events(svc, *alert(ann.id, "overtemp", "critical"))
    await relay(svc)
    started = clock.utcnow()
    assert await svc.run_jobs() == 3
    waits = sorted((job.run_at - started).total_seconds() for job in await push_jobs(svc))
    assert [job.state for job in await push_jobs(svc)] == [jobs.FAILED] * 3
    assert waits[0] < 5  # the garbled 500: an ordinary backoff
    assert 60 <= waits[1] < 70 and 120 <= waits[2] < 130

    with clock.frozen(started + timedelta(seconds=61)):
        assert await svc.run_jobs() == 2  # the garbled one (a 200 is a 200) and APNs
    with clock.frozen(started + timedelta(seconds=121)):
        assert await svc.run_jobs() == 1
    assert {job.state for job in await push_jobs(svc)} == {jobs.SUCCEEDED}
    assert len(fakes.fcm.sent_to(FCM_TOKEN)) == len(fakes.apns.sent_to(APNS_TOKEN)) == 1
    assert len((await svc.client.get(f"{API}/push/tokens", headers=ann.headers)).json()) == 3


async def test_a_dead_push_job_is_retried_from_the_admin_api(svc: Service, fakes: Fakes) -> None:
    ann = await cook(svc, "ann@example.com")
    fakes.fcm.script[FCM_TOKEN] = [(400, {}, fcm_error(
        400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'"))]
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    await record_events(svc, *awaiting(ann.id, str(uuid.uuid4()), 0))
    await relay(svc)
    assert await svc.run_jobs() == 1
    [job] = await push_jobs(svc)
    assert job.state == jobs.DEAD and job.attempts == 1  # permanent: no retries
    assert job.last_error is not None and "INVALID_ARGUMENT" in job.last_error

    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, "ops@example.com",
                                        STRONG_PASSWORD, "Ops")
    admin = bearer((await svc.login("ops@example.com")).json())
    assert_problem(await svc.client.get(f"{API}/admin/jobs", headers=ann.headers),
                   403, "forbidden")
    dead = (await svc.client.get(f"{API}/admin/jobs?state=dead", headers=admin)).json()
    assert [item["id"] for item in dead["items"]] == [str(job.id)]
    assert "payload" not in dead["items"][0]
    retried = await svc.client.post(f"{API}/admin/jobs/{job.id}/retry", headers=admin)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["attempts"]) == ("queued", 0)
    assert_problem(await svc.client.post(f"{API}/admin/jobs/{job.id}/retry", headers=admin),
                   409, "job_not_retryable")
    assert_problem(await svc.client.post(f"{API}/admin/jobs/{uuid.uuid4()}/retry",
                                         headers=admin), 404, "not_found")
    assert await svc.run_jobs() == 1
    assert len(fakes.fcm.sent_to(FCM_TOKEN)) == 1
    assert (await svc.client.get(f"{API}/admin/jobs?state=dead", headers=admin)).json()[
        "items"] == []


async def test_quiet_hours_hold_back_a_normal_push_but_not_an_overtemperature_alert(
        svc: Service, fakes: Fakes) -> None:
    ann = await cook(svc, "ann@example.com")  # UTC
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    await add_token(svc, ann, "apns", APNS_TOKEN)
    now = clock.utcnow()
    end = (now + timedelta(minutes=10)).replace(second=0, microsecond=0)
    reply = await svc.client.put(f"{API}/push/preferences", headers=ann.headers, json={
        "quiet_hours": {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
                        "end": end.strftime("%H:%M")}})
    assert reply.status_code == 200
    sid = str(uuid.uuid4())
    await record_events(svc, *awaiting(ann.id, sid, 0), finished(ann.id, sid),
                        *alert(ann.id, "overtemp", "warning"))
    await relay(svc)
    assert await svc.run_jobs() == 2  # only the alert, on both providers
    assert [r.body["data"]["kind"] for r in fakes.fcm.sent] == ["alert"]
    assert len(fakes.apns.sent) == 1
    pushes = {e.kind: e.push for e in await inbox_rows(svc, ann.id)}
    assert pushes == {"awaiting_user": "held", "session_completed": "held", "alert": "queued"}

    # Quiet hours end; ten minutes on the step's prompt is stale (dropped), the finish is not.
    with clock.frozen(end + timedelta(minutes=10)):
        assert await svc.run_jobs() == 4
    assert [r.body["data"]["kind"] for r in fakes.fcm.sent] == ["alert", "session_completed"]
    assert len(fakes.apns.sent) == 2
    # The inbox has all three whatever the pushes did.
    assert len((await svc.client.get(f"{API}/notifications", headers=ann.headers)).json()[
        "items"]) == 3


async def test_a_refused_access_token_is_exchanged_again(
        svc: Service, fakes: Fakes) -> None:
    ann = await cook(svc, "ann@example.com")
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    await record_events(svc, *alert(ann.id, "overtemp", "critical"))
    await relay(svc)
    assert await svc.run_jobs() == 1
    assert fakes.fcm.exchanges == 1
    # An access token the server no longer honours (revoked, clock skew): 401, forgotten, and
    # the send is tried again at once with a new one.
    fakes.fcm.access_tokens.clear()
    await record_events(svc, *alert(ann.id, "motor_stall", "critical"))
    await relay(svc)
    assert await svc.run_jobs() == 1
    assert {job.state for job in await push_jobs(svc)} == {jobs.SUCCEEDED}
    assert fakes.fcm.exchanges == 2
    assert len(fakes.fcm.sent_to(FCM_TOKEN)) == 2
    assert fakes.fcm.refused_assertions == 0


