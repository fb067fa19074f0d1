"""The REST side of sessions: creating one (and what goes to the appliance), ownership (404),
bad input (422), commands, rating and notes, history with filters and cursors, events, stats."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from epicura.appliances.models import ApplianceCommand
from epicura.appliances.sync_models import LibraryEntry
from tests.appliances.conftest import assert_problem
from tests.sessions.support import Cook, cook, event, send, stored
from tests.support import API, STRONG_PASSWORD, Service

pytestmark = pytest.mark.anyio


async def commands_to(svc: Service, appliance_id: uuid.UUID) -> list[dict[str, Any]]:
    """The commands recorded for the appliance (each one queued on `down/cmd` with them)."""
    async with svc.runtime.db.sessions() as session:
        rows = (await session.scalars(select(ApplianceCommand).where(
            ApplianceCommand.appliance_id == appliance_id
        ).order_by(ApplianceCommand.created_at))).all()
    return [{"request_id": str(row.request_id), "name": row.name, "args": row.args}
            for row in rows]


async def test_creating_a_session_prepares_the_appliance(api: Service) -> None:
    c = await cook(api)
    created = await c.new_session(servings=2)
    assert (created["status"], created["servings"], created["recipe"]["version"]) == (
        "planned", 2, 1)
    (prepare,) = await commands_to(api, c.appliance_id)
    assert prepare["name"] == "session.prepare"
    assert prepare["args"] == {"recipe_id": str(c.recipe_id), "recipe_version": 1,
                               "servings": 2, "session_id": created["id"]}
    async with api.runtime.db.sessions() as session:
        entry = await session.get(LibraryEntry, (c.appliance_id, c.recipe_id))
    assert entry is not None and entry.sent
    # The version named is pinned; one that does not exist is a 404.
    missing = await api.client.post(f"{API}/sessions", headers=c.headers, json={
        "appliance_id": str(c.appliance_id), "recipe_id": str(c.recipe_id),
        "recipe_version": 2})
    assert_problem(missing, 404, "not_found")


async def test_someone_elses_appliance_recipe_or_session_is_not_found(api: Service) -> None:
    c, other = await cook(api), await cook(api)
    theirs = await other.new_session()
    for appliance_id, recipe_id in ((other.appliance_id, c.recipe_id),
                                    (c.appliance_id, other.recipe_id),
                                    (uuid.uuid4(), c.recipe_id)):
        reply = await api.client.post(f"{API}/sessions", headers=c.headers, json={
            "appliance_id": str(appliance_id), "recipe_id": str(recipe_id)})
        assert_problem(reply, 404, "not_found")
    base = f"{API}/sessions/{theirs['id']}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "", None), ("PATCH", "", {"notes": "mine"}), ("GET", "/events", None),
        ("POST", "/pause", None),
        ("POST", "/abort", None), ("GET", "/telemetry", None)]
    for method, path, body in calls:
        reply = await api.client.request(method, base + path, json=body, headers=c.headers)
        assert_problem(reply, 404, "not_found")
        unknown = await api.client.request(method, f"{API}/sessions/{uuid.uuid4()}{path}",
                                           json=body, headers=c.headers)
        assert_problem(unknown, 404, "not_found")
    assert (await api.client.get(base)).status_code == 401
    assert (await other.get(theirs["id"]))["status"] == "planned"  # untouched


async def test_an_offline_appliance_gets_no_session(api: Service) -> None:
    c = await cook(api, online=False)
    reply = await api.client.post(f"{API}/sessions", headers=c.headers, json={
        "appliance_id": str(c.appliance_id), "recipe_id": str(c.recipe_id)})
    assert_problem(reply, 409, "appliance_offline")
    assert (await api.client.get(f"{API}/sessions", headers=c.headers)).json()["items"] == []


async def test_bad_input_is_refused(api: Service) -> None:
    c = await cook(api)
    good = {"appliance_id": str(c.appliance_id), "recipe_id": str(c.recipe_id)}
    bodies: list[dict[str, Any]] = [
        {"recipe_id": str(c.recipe_id)}, {**good, "user_id": str(uuid.uuid4())},
        {**good, "recipe_version": 0}, {**good, "servings": 0}, {**good, "servings": "two"},
        {**good, "appliance_id": "not-a-uuid"}, {**good, "status": "completed"}]
    for body in bodies:
        reply = await api.client.post(f"{API}/sessions", json=body, headers=c.headers)
        assert_problem(reply, 422, "validation_failed")
    sid = (await c.new_session())["id"]
    patches: list[dict[str, Any]] = [
        {"rating": 6}, {"rating": 0}, {"rating": "5"}, {"notes": "x" * 2001},
        {"status": "completed"}, {"summary": {}}, {"notes": "a\x00b"}]
    for body in patches:
        reply = await api.client.patch(f"{API}/sessions/{sid}", json=body, headers=c.headers)
        assert_problem(reply, 422, "validation_failed")
    assert (await api.client.get(f"{API}/sessions/not-a-uuid", headers=c.headers)
            ).status_code == 422
    for query in ("status=stale", "status=done", "from=2026-01-01T00:00:00", "limit=0",
                  "limit=101", "appliance_id=x"):
        reply = await api.client.get(f"{API}/sessions?{query}", headers=c.headers)
        assert_problem(reply, 422, "validation_failed")
    reply = await api.client.get(f"{API}/sessions?cursor=not-a-cursor", headers=c.headers)
    assert_problem(reply, 400, "invalid_cursor")
    reply = await api.client.get(f"{API}/sessions/{sid}/events?cursor=eyJzIjoieCJ9",
                                 headers=c.headers)
    assert_problem(reply, 400, "invalid_cursor")


async def test_pause_and_abort_are_commands_to_the_appliance(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    reply = await api.client.post(f"{API}/sessions/{sid}/pause", headers=c.headers)
    assert_problem(reply, 409, "session_not_started")
    await send(api, c.appliance_id, event(sid, 1, "started"))
    reply = await api.client.post(f"{API}/sessions/{sid}/pause", headers=c.headers)
    assert reply.status_code == 202, reply.text
    request_id = reply.json()["request_id"]
    last = (await commands_to(api, c.appliance_id))[-1]
    assert (last["request_id"], last["name"], last["args"]) == (
        request_id, "session.pause", {"session_id": sid})
    assert (await c.get(sid))["status"] == "running"  # until the appliance says otherwise
    reply = await api.client.post(f"{API}/sessions/{sid}/abort", headers=c.headers)
    assert reply.status_code == 202
    assert (await commands_to(api, c.appliance_id))[-1]["name"] == "session.abort"
    await send(api, c.appliance_id, event(sid, 2, "aborted"))
    for action in ("pause", "abort"):
        reply = await api.client.post(f"{API}/sessions/{sid}/{action}", headers=c.headers)
        assert_problem(reply, 409, "session_finished")


async def test_aborting_a_planned_session_ends_it_at_once(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    reply = await api.client.post(f"{API}/sessions/{sid}/abort", headers=c.headers)
    assert reply.status_code == 202
    ended = await c.get(sid)
    assert (ended["status"], ended["duration_s"]) == ("aborted", 0)
    assert ended["summary"]["samples"] == 0


async def test_rating_and_notes(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    reply = await api.client.patch(f"{API}/sessions/{sid}", json={"rating": 4},
                                   headers=c.headers)
    assert_problem(reply, 409, "session_not_finished")
    reply = await api.client.patch(f"{API}/sessions/{sid}", json={"notes": "Less salt."},
                                   headers=c.headers)
    assert reply.status_code == 200 and reply.json()["notes"] == "Less salt."
    await send(api, c.appliance_id, event(sid, 1, "started"), event(sid, 2, "completed"))
    reply = await api.client.patch(f"{API}/sessions/{sid}", json={"rating": 4},
                                   headers=c.headers)
    assert reply.status_code == 200
    assert (reply.json()["rating"], reply.json()["notes"]) == (4, "Less salt.")
    reply = await api.client.patch(f"{API}/sessions/{sid}", json={"notes": None},
                                   headers=c.headers)
    assert (reply.json()["rating"], reply.json()["notes"]) == (4, None)


async def _three_sessions(api: Service, c: Cook) -> list[str]:
    ids = []
    for _ in range(3):
        sid = (await c.new_session())["id"]
        ids.append(sid)
    await send(api, c.appliance_id, event(ids[0], 1, "started"), event(ids[0], 2, "completed"),
               event(ids[1], 1, "started"), event(ids[1], 2, "failed"))
    return ids


async def test_history_filters_and_pages(api: Service) -> None:
    c = await cook(api)
    other = await cook(api)
    await other.new_session()
    ids = await _three_sessions(api, c)

    async def listed(query: str) -> list[str]:
        reply = await api.client.get(f"{API}/sessions?{query}", headers=c.headers)
        assert reply.status_code == 200, reply.text
        return [item["id"] for item in reply.json()["items"]]

    assert await listed("") == ids[::-1]
    assert await listed("status=completed") == [ids[0]]
    assert await listed(f"appliance_id={c.appliance_id}&status=planned") == [ids[2]]
    assert await listed(f"recipe_id={other.recipe_id}") == []
    assert await listed(f"appliance_id={other.appliance_id}") == []
    assert await listed("from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z") == []
    pages: list[str] = []
    cursor = ""
    while True:
        reply = await api.client.get(f"{API}/sessions?limit=2&cursor={cursor}",
                                     headers=c.headers)
        body = reply.json()
        pages += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert pages == ids[::-1]


async def test_the_event_log_pages_in_seq_order(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    await send(api, c.appliance_id, event(sid, 3, "paused"), event(sid, 1, "started"),
               event(sid, 2, "step_started", step_index=0, data={"title": "Chop"}))
    first = (await api.client.get(f"{API}/sessions/{sid}/events?limit=2",
                                  headers=c.headers)).json()
    assert [(e["seq"], e["type"]) for e in first["items"]] == [(1, "started"),
                                                               (2, "step_started")]
    assert first["items"][1]["step_index"] == 0
    assert first["items"][1]["data"] == {"title": "Chop"}
    rest = (await api.client.get(f"{API}/sessions/{sid}/events?limit=2&cursor="
                                 f"{first['next_cursor']}", headers=c.headers)).json()
    assert [e["seq"] for e in rest["items"]] == [3] and rest["next_cursor"] is None


async def test_stats(api: Service) -> None:
    c = await cook(api)
    ids = await _three_sessions(api, c)
    reply = await api.client.get(f"{API}/sessions/stats", headers=c.headers)
    assert reply.status_code == 200, reply.text
    stats = reply.json()
    assert stats["by_status"] == {"completed": 1, "failed": 1, "planned": 1}
    assert stats["top_recipes"] == [{"recipe_id": str(c.recipe_id), "title": "Tomato soup",
                                     "sessions": 3, "completed": 1}]
    (month,) = stats["by_month"]
    assert month["sessions"] == 3 and month["cooking_s"] == stats["total_cooking_s"]
    other = await cook(api)
    empty = (await api.client.get(f"{API}/sessions/stats", headers=other.headers)).json()
    assert empty == {"by_status": {}, "top_recipes": [], "total_cooking_s": 0, "by_month": []}
    assert len(ids) == 3


async def test_an_idempotency_key_makes_one_session(api: Service) -> None:
    c = await cook(api)
    body = {"appliance_id": str(c.appliance_id), "recipe_id": str(c.recipe_id)}
    headers = {**c.headers, "Idempotency-Key": "plan-soup-1"}
    first = await api.client.post(f"{API}/sessions", json=body, headers=headers)
    again = await api.client.post(f"{API}/sessions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    listed = await api.client.get(f"{API}/sessions", headers=c.headers)
    assert len(listed.json()["items"]) == 1
    assert len(await commands_to(api, c.appliance_id)) == 1


async def test_etags(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    await send(api, c.appliance_id, event(sid, 1, "started"), event(sid, 2, "completed"))
    url = f"{API}/sessions/{sid}"
    first = await api.client.get(url, headers=c.headers)
    etag = first.headers["etag"]
    same = await api.client.get(url, headers={**c.headers, "If-None-Match": etag})
    assert same.status_code == 304 and same.headers["etag"] == etag
    changed = await api.client.patch(url, json={"notes": "Good."},
                                     headers={**c.headers, "If-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    stale = await api.client.patch(url, json={"notes": "Mine."},
                                   headers={**c.headers, "If-Match": etag})
    assert_problem(stale, 412, "version_conflict")
    assert (await c.get(sid))["notes"] == "Good."
    fresh = await api.client.get(url, headers={**c.headers, "If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.json()["notes"] == "Good."


async def test_the_openapi_document_describes_the_session_routes(api: Service) -> None:
    document = (await api.client.get("/openapi.json")).json()
    paths = document["paths"]
    for path, methods in ((f"{API}/sessions", {"get", "post"}),
                          (f"{API}/sessions/stats", {"get"}),
                          (f"{API}/sessions/{{session_id}}", {"get", "patch"}),
                          (f"{API}/sessions/{{session_id}}/events", {"get"}),
                          (f"{API}/sessions/{{session_id}}/pause", {"post"}),
                          (f"{API}/sessions/{{session_id}}/abort", {"post"}),
                          (f"{API}/sessions/{{session_id}}/telemetry", {"get"})):
        assert methods <= set(paths[path]), path
    assert {"404", "409", "422"} <= set(paths[f"{API}/sessions"]["post"]["responses"])
    assert "409" in paths[f"{API}/sessions/{{session_id}}/pause"]["post"]["responses"]
    status = document["components"]["schemas"]["SessionOut"]["properties"]["status"]
    assert "stale" in status["enum"]


async def test_an_erased_account_loses_its_notes_not_its_sessions(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    reply = await api.client.patch(f"{API}/sessions/{sid}", json={"notes": "Call mum."},
                                   headers=c.headers)
    assert reply.status_code == 200
    erased = await api.client.request("DELETE", f"{API}/users/me",
                                      json={"password": STRONG_PASSWORD}, headers=c.headers)
    assert erased.status_code == 204, erased.text
    row = await stored(api, sid)
    assert row.notes is None and row.user_id == c.user_id  # kept for the statistics
