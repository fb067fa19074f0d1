"""Helpers of the session tests: a cook with a recipe and an online appliance, session events
as an appliance sends them, and the pipeline that stores them (the bridge's own)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from epicura.appliances import reported
from epicura.appliances.models import Appliance
from epicura.bridge import ingest
from epicura.bridge.payloads import DeviceMessage, validate
from epicura.kit import clock
from epicura.recipes.models import Recipe
from epicura.sessions.models import CookingSession, SessionEvent
from tests.bridge.ingest_support import make_appliances, wait_until
from tests.support import API, Service, bearer

# Chop 5 s, add the tomatoes (the cook), cook 900 s, blend 60 s.
STEPS = [
    {"title": "Chop", "action": "blend", "params": {"speed": 5, "duration_s": 5}},
    {"title": "Add tomatoes", "action": "await_user", "params": {"prompt": "Add the tomatoes"}},
    {"title": "Cook", "action": "heat",
     "params": {"temperature_c": 100, "duration_s": 900, "speed": 1}},
    {"title": "Blend", "action": "blend", "params": {"speed": 10, "duration_s": 60}},
]


def soup(title: str = "Tomato soup") -> dict[str, Any]:
    return {
        "title": title, "description": "Smooth.", "servings": 4, "difficulty": "easy",
        "cuisine": "italian", "category": "soup", "tags": ["quick"],
        "ingredients": [{"key": "tomato", "name": "Tomatoes", "quantity": 800, "unit": "g"}],
        "steps": STEPS,
    }


@dataclass
class Cook:
    svc: Service
    headers: dict[str, str]
    user_id: uuid.UUID
    appliance_id: uuid.UUID
    recipe_id: uuid.UUID

    async def new_session(self, **fields: Any) -> dict[str, Any]:
        body = {"appliance_id": str(self.appliance_id), "recipe_id": str(self.recipe_id),
                **fields}
        reply = await self.svc.client.post(f"{API}/sessions", json=body, headers=self.headers)
        assert reply.status_code == 201, reply.text
        created: dict[str, Any] = reply.json()
        return created

    async def get(self, session_id: uuid.UUID | str) -> dict[str, Any]:
        reply = await self.svc.client.get(f"{API}/sessions/{session_id}", headers=self.headers)
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()
        return found


async def cook(svc: Service, email: str | None = None, *, online: bool = True) -> Cook:
    """A signed-up user with a recipe of their own and an appliance they own (online)."""
    tokens = await svc.signed_up(email or f"cook-{uuid.uuid4().hex[:8]}@example.com")
    headers = bearer(tokens)
    me = await svc.client.get(f"{API}/users/me", headers=headers)
    user_id = uuid.UUID(me.json()["id"])
    recipe = await svc.client.post(f"{API}/recipes", json=soup(), headers=headers)
    assert recipe.status_code == 201, recipe.text
    (appliance_id,) = await make_appliances(svc.runtime, 1, owner_id=user_id)
    if online:
        await speak(svc, appliance_id)
    return Cook(svc, headers, user_id, appliance_id, uuid.UUID(recipe.json()["id"]))


async def speak(svc: Service, appliance_id: uuid.UUID, at: datetime | None = None) -> None:
    """The appliance's birth message (online, last seen now)."""
    async with svc.runtime.db.transaction() as session:
        await reported.apply_presence(
            session, appliance_id,
            {"state": "online", "firmware_version": "1.4.2", "boot_id": "boot-1"},
            at or clock.utcnow())


def now_ms() -> int:
    """The appliance's clock: the test's (frozen or not)."""
    return int(clock.utcnow().timestamp() * 1000)


def event(session_id: uuid.UUID | str, seq: Any, type_: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": str(uuid.uuid4()), "ts": now_ms(), "session_id": str(session_id),
            "seq": seq, "type": type_, **fields}


def telemetry(session_id: uuid.UUID | str | None,
              samples: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"v": 1, "id": str(uuid.uuid4()), "ts": samples[-1]["t"],
                            "seq": 1, "boot_id": "boot-1", "samples": samples}
    if session_id is not None:
        body["session_id"] = str(session_id)
    return body


def message(appliance_id: uuid.UUID, body: dict[str, Any], kind: str = "session") -> DeviceMessage:
    return validate(appliance_id, kind, body, now_ms())


async def send(svc: Service, appliance_id: uuid.UUID, *bodies: dict[str, Any],
               kind: str = "session", now: datetime | None = None) -> ingest.Outcome:
    """Through the ingest pipeline (as the bridge stores a batch)."""
    return await ingest.store_batch(
        svc.runtime, [message(appliance_id, b, kind) for b in bodies], now=now)


async def stored(svc: Service, session_id: uuid.UUID | str) -> CookingSession:
    async with svc.runtime.db.sessions() as session:
        row = await session.get(CookingSession, uuid.UUID(str(session_id)))
        assert row is not None
        return row


async def logged(svc: Service, session_id: uuid.UUID | str) -> list[tuple[int, str]]:
    async with svc.runtime.db.sessions() as session:
        rows = (await session.scalars(select(SessionEvent).where(
            SessionEvent.session_id == uuid.UUID(str(session_id))).order_by(SessionEvent.seq)
        )).all()
    return [(row.seq, row.type) for row in rows]


async def recipe_row(svc: Service, recipe_id: uuid.UUID) -> Recipe:
    async with svc.runtime.db.sessions() as session:
        row = await session.get(Recipe, recipe_id)
        assert row is not None
        return row


async def appliance_row(svc: Service, appliance_id: uuid.UUID) -> Appliance:
    async with svc.runtime.db.sessions() as session:
        row = await session.get(Appliance, appliance_id)
        assert row is not None
        return row


class Heard:
    """Every event the bus delivers (as the WebSocket gateway receives them)."""

    def __init__(self, svc: Service) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        svc.runtime.bus.subscribe_all(lambda channel, payload: self.seen.append(
            (channel, payload)))

    def of(self, event_type: str, channel: str | None = None) -> list[dict[str, Any]]:
        return [payload["data"] for c, payload in self.seen
                if payload.get("type") == event_type and channel in (None, c)]

    async def wait_for(self, event_type: str, channel: str, count: int = 1) -> list[
            dict[str, Any]]:
        async def arrived() -> bool:
            return len(self.of(event_type, channel)) >= count

        await wait_until(arrived, 15, f"{count} × {event_type} on {channel}")
        return self.of(event_type, channel)
