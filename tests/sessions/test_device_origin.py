"""Sessions the appliance starts on its own, and what the mirror refuses: another appliance's
session, an appliance without owner, a recipe its owner cannot read."""

from __future__ import annotations

import uuid

import pytest

from epicura.sessions import mirror
from tests.bridge.ingest_support import make_appliances
from tests.sessions.support import cook, event, logged, send, stored
from tests.support import API, Service

pytestmark = pytest.mark.anyio


def refused(reason: str) -> float:
    return float(mirror.rejected.labels(reason)._value.get())


async def test_a_session_started_on_the_appliance_is_created_from_its_first_event(
    api: Service,
) -> None:
    c = await cook(api)
    sid = uuid.uuid4()
    await send(api, c.appliance_id, event(sid, 1, "started", recipe_id=str(c.recipe_id),
                                          recipe_version=1, servings=2))
    found = await c.get(sid)
    assert (found["origin"], found["status"], found["servings"]) == ("device", "running", 2)
    assert found["recipe"]["title"] == "Tomato soup"
    listed = await api.client.get(f"{API}/sessions", headers=c.headers)
    assert [item["id"] for item in listed.json()["items"]] == [str(sid)]


async def test_events_that_arrive_before_the_creating_one_wait_for_it(api: Service) -> None:
    c = await cook(api)
    sid = uuid.uuid4()
    # seq 2 and 3 first (another bridge had seq 1): nothing names the recipe yet.
    await send(api, c.appliance_id, event(sid, 2, "step_started", step_index=0),
               event(sid, 3, "awaiting_user", step_index=1))
    reply = await api.client.get(f"{API}/sessions/{sid}", headers=c.headers)
    assert reply.status_code == 404
    await send(api, c.appliance_id, event(sid, 1, "started", recipe_id=str(c.recipe_id),
                                          recipe_version=1))
    found = await c.get(sid)
    assert (found["status"], found["step_index"], found["step_title"]) == (
        "awaiting_user", 1, "Add tomatoes")
    assert await logged(api, sid) == [(1, "started"), (2, "step_started"), (3, "awaiting_user")]


async def test_an_event_for_another_appliances_session_is_refused(api: Service) -> None:
    owner, intruder = await cook(api), await cook(api)
    sid = (await owner.new_session())["id"]
    await send(api, owner.appliance_id, event(sid, 1, "started"))
    before = refused("other_appliance")
    await send(api, intruder.appliance_id, event(sid, 2, "aborted"),
               event(sid, 3, "completed"))
    assert refused("other_appliance") == before + 2
    row = await stored(api, sid)
    assert (row.status, row.last_seq) == ("running", 1)
    assert await logged(api, sid) == [(1, "started")]
    # Nor can it start a session of its own under that id.
    await send(api, intruder.appliance_id, event(sid, 9, "started",
                                                 recipe_id=str(intruder.recipe_id),
                                                 recipe_version=1))
    assert (await stored(api, sid)).appliance_id == owner.appliance_id


async def test_an_unowned_appliance_or_an_unreadable_recipe_makes_no_session(
    api: Service,
) -> None:
    c = await cook(api)
    (unowned,) = await make_appliances(api.runtime, 1)
    before = refused("no_owner")
    sid = uuid.uuid4()
    outcome = await send(api, unowned, event(sid, 1, "started", recipe_id=str(c.recipe_id),
                                             recipe_version=1))
    assert set(outcome.results.values()) == {"stored"}  # acknowledged, not retried
    assert refused("no_owner") == before + 1
    assert await logged(api, sid) == []
    # Another cook's private recipe: not for this appliance's owner.
    other = await cook(api)
    before = refused("recipe_not_readable")
    await send(api, c.appliance_id, event(sid, 1, "started", recipe_id=str(other.recipe_id),
                                          recipe_version=1))
    await send(api, c.appliance_id, event(uuid.uuid4(), 1, "started",
                                          recipe_id=str(c.recipe_id), recipe_version=7))
    assert refused("recipe_not_readable") == before + 2
    assert await logged(api, sid) == []
    listed = await api.client.get(f"{API}/sessions", headers=c.headers)
    assert listed.json()["items"] == []


async def test_a_repeated_first_event_that_names_the_recipe_still_creates_the_session(
    api: Service,
) -> None:
    c = await cook(api)
    sid = uuid.uuid4()
    await send(api, c.appliance_id, event(sid, 1, "started"),
               event(sid, 2, "step_started", step_index=0))
    # Firmware that sends the recipe only on a retry of seq 1: the log has seq 1 already.
    await send(api, c.appliance_id, event(sid, 1, "started", recipe_id=str(c.recipe_id),
                                          recipe_version=1))
    found = await c.get(sid)
    assert (found["status"], found["step_title"]) == ("running", "Chop")
    assert await logged(api, sid) == [(1, "started"), (2, "step_started")]
