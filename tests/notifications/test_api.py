"""`/push/tokens`, `/push/preferences` and `/notifications` over HTTP, on PostgreSQL + Redis and
on the embedded default: registration (201, then 200), a token moving to another user, deletion,
preferences with quiet hours, the inbox with paging, unread filter, read and read-all, and the
422s for bad tokens, platforms, times and time zones."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from epicura.notifications import service
from tests.appliances.conftest import assert_problem
from tests.notifications.conftest import APNS_TOKEN, FCM_TOKEN, add_token, cook
from tests.support import API, Service

pytestmark = pytest.mark.anyio


async def test_a_token_is_registered_refreshed_moved_and_deleted(api: Service) -> None:
    ann = await cook(api, "ann@example.com")
    bob = await cook(api, "bob@example.com")
    body = {"platform": "fcm", "token": FCM_TOKEN, "app_version": "1.4.0", "locale": "de-DE"}
    first = await api.client.post(f"{API}/push/tokens", headers=ann.headers, json=body)
    assert first.status_code == 201, first.text
    token = first.json()
    assert token["platform"] == "fcm" and token["locale"] == "de-DE"
    assert "token" not in token  # the secret-ish string is never echoed

    again = await api.client.post(f"{API}/push/tokens", headers=ann.headers,
                                  json={**body, "app_version": "1.5.0"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == token["id"]
    assert again.json()["app_version"] == "1.5.0"
    assert again.json()["last_seen_at"] >= token["last_seen_at"]

    # The phone changed hands: the token moves with it.
    moved = await api.client.post(f"{API}/push/tokens", headers=bob.headers, json=body)
    assert moved.status_code == 201
    assert (await api.client.get(f"{API}/push/tokens", headers=ann.headers)).json() == []
    [bobs] = (await api.client.get(f"{API}/push/tokens", headers=bob.headers)).json()
    assert bobs["id"] == token["id"]

    # Another user's token is a 404; the owner deletes it once.
    assert_problem(await api.client.delete(f"{API}/push/tokens/{token['id']}",
                                           headers=ann.headers), 404, "not_found")
    gone = await api.client.delete(f"{API}/push/tokens/{token['id']}", headers=bob.headers)
    assert gone.status_code == 204
    assert_problem(await api.client.delete(f"{API}/push/tokens/{token['id']}",
                                           headers=bob.headers), 404, "not_found")

    apns = await add_token(api, ann, "apns", APNS_TOKEN.upper())
    assert apns["platform"] == "apns"
    assert (await api.client.post(f"{API}/push/tokens", headers=ann.headers, json={
        "platform": "apns", "token": APNS_TOKEN})).status_code == 200  # case-insensitive hex


@pytest.mark.parametrize(("body", "error_type"), [
    ({"platform": "fcm", "token": "x" * 5000}, "string_too_long"),
    ({"platform": "fcm", "token": "has spaces " * 3}, "string_pattern_mismatch"),
    ({"platform": "apns", "token": FCM_TOKEN}, "string_pattern_mismatch"),
    ({"platform": "apns", "token": "ab" * 20}, "string_too_short"),
    ({"platform": "apns", "token": "ab" * 101}, "string_too_long"),
    ({"platform": "gcm", "token": FCM_TOKEN}, "union_tag_invalid"),
    ({"token": FCM_TOKEN}, "union_tag_not_found"),
    ({"platform": "fcm", "token": ""}, "string_too_short"),
    ({"platform": "fcm", "token": FCM_TOKEN, "user_id": str(uuid.uuid4())}, "extra_forbidden"),
    ({"platform": "fcm", "token": FCM_TOKEN, "locale": "x" * 40}, "string_pattern_mismatch"),
    ({"platform": "fcm", "token": FCM_TOKEN, "app_version": "1\n2"}, "string_pattern_mismatch"),
])
async def test_bad_tokens_are_refused_with_422(svc: Service, body: dict[str, Any],
                                               error_type: str) -> None:
    ann = await cook(svc, "ann@example.com")
    reply = await svc.client.post(f"{API}/push/tokens", headers=ann.headers, json=body)
    problem = assert_problem(reply, 422, "validation_failed")
    assert error_type in {item["type"] for item in problem["errors"]}, problem


async def test_preferences_round_trip(api: Service) -> None:
    ann = await cook(api, "ann@example.com", timezone="Europe/Berlin")
    defaults = (await api.client.get(f"{API}/push/preferences", headers=ann.headers)).json()
    assert defaults["categories"] == {"cooking": True, "alerts": True, "appliance": True,
                                      "firmware": True, "security": True}
    assert defaults["quiet_hours"] is None

    put = await api.client.put(f"{API}/push/preferences", headers=ann.headers, json={
        "categories": {"cooking": False, "firmware": False},
        "quiet_hours": {"start": "22:00", "end": "07:00"}})
    assert put.status_code == 200, put.text
    saved = (await api.client.get(f"{API}/push/preferences", headers=ann.headers)).json()
    assert saved == put.json()
    assert saved["categories"]["cooking"] is False and saved["categories"]["alerts"] is True
    assert saved["quiet_hours"] == {"start": "22:00", "end": "07:00",
                                    "timezone": "Europe/Berlin"}  # the user's zone by default

    put = await api.client.put(f"{API}/push/preferences", headers=ann.headers, json={
        "quiet_hours": {"start": "23:30", "end": "06:15", "timezone": "America/New_York"}})
    assert put.json()["quiet_hours"]["timezone"] == "America/New_York"
    assert put.json()["categories"]["cooking"] is True  # a PUT replaces the whole document

    put = await api.client.put(f"{API}/push/preferences", headers=ann.headers, json={
        "quiet_hours": {"start": "22:00", "end": "22:00"}})
    assert put.status_code == 200 and put.json()["quiet_hours"] is None  # an empty window


@pytest.mark.parametrize(("body", "error_type"), [
    ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "string_pattern_mismatch"),
    ({"quiet_hours": {"start": "7:00", "end": "08:00"}}, "string_pattern_mismatch"),
    ({"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}},
     "value_error"),
    ({"quiet_hours": {"start": "22:00"}}, "missing"),
    ({"categories": {"security": False}}, "literal_error"),
    ({"categories": {"marketing": True}}, "extra_forbidden"),
    ({"categories": {"cooking": "maybe"}}, "bool_type"),
    ({"categories": {"cooking": 0}}, "bool_type"),
])
async def test_bad_preferences_are_refused_with_422(svc: Service, body: dict[str, Any],
                                                    error_type: str) -> None:
    ann = await cook(svc, "ann@example.com")
    reply = await svc.client.put(f"{API}/push/preferences", headers=ann.headers, json=body)
    problem = assert_problem(reply, 422, "validation_failed")
    assert error_type in {item["type"] for item in problem["errors"]}, problem


async def test_the_inbox_pages_filters_and_marks_read(api: Service) -> None:
    ann = await cook(api, "ann@example.com")
    bob = await cook(api, "bob@example.com")
    session_id = str(uuid.uuid4())
    async with api.runtime.db.transaction() as session:
        for step in range(5):
            await service.notify(session, ann.id, "awaiting_user",
                                 {"session_id": session_id, "step_index": step,
                                  "prompt": f"add ingredient {step}"},
                                 collapse_key=f"session:{session_id}:step:{step}")
        # The same step again collapses into its entry.
        assert await service.notify(session, ann.id, "awaiting_user",
                                    {"session_id": session_id, "step_index": 4},
                                    collapse_key=f"session:{session_id}:step:4") is None

    page = (await api.client.get(f"{API}/notifications?limit=2", headers=ann.headers)).json()
    assert [item["data"]["step_index"] for item in page["items"]] == [4, 3]  # newest first
    assert page["items"][0]["body"] == "Step 5: add ingredient 4"
    seen = [item["id"] for item in page["items"]]
    while page["next_cursor"]:
        page = (await api.client.get(f"{API}/notifications",
                                     params={"limit": 2, "cursor": page["next_cursor"]},
                                     headers=ann.headers)).json()
        seen += [item["id"] for item in page["items"]]
    assert len(seen) == len(set(seen)) == 5

    assert_problem(await api.client.post(f"{API}/notifications/{seen[0]}/read",
                                         headers=bob.headers), 404, "not_found")
    assert (await api.client.post(f"{API}/notifications/{seen[0]}/read",
                                  headers=ann.headers)).status_code == 204
    unread = (await api.client.get(f"{API}/notifications?unread=true",
                                   headers=ann.headers)).json()["items"]
    assert [item["id"] for item in unread] == seen[1:]
    assert (await api.client.post(f"{API}/notifications/read-all",
                                  headers=ann.headers)).status_code == 204
    assert (await api.client.get(f"{API}/notifications?unread=true",
                                 headers=ann.headers)).json()["items"] == []
    read = (await api.client.get(f"{API}/notifications?unread=false",
                                 headers=ann.headers)).json()["items"]
    assert len(read) == 5 and all(item["read_at"] for item in read)
    assert (await api.client.get(f"{API}/notifications", headers=bob.headers)).json() == {
        "items": [], "next_cursor": None}
    assert_problem(await api.client.get(f"{API}/notifications?cursor=nope",
                                        headers=ann.headers), 400, "invalid_cursor")
    assert (await api.client.get(f"{API}/notifications")).status_code == 401
