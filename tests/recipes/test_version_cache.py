"""The recipe caches stay correct across service instances.

Two apps run on the same PostgreSQL database and Redis (as two processes behind a load balancer
would). Both read a recipe first, which warms each one's caches (the head of the recipe, the
rendered version, the anonymous list pages); then the recipe changes through one instance and
the other must serve the change on the very next request, while old versions stay readable.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from epicura.config import Settings
from epicura.recipes.cache import CHANNEL, caches
from tests.recipes.test_recipe_flow import soup
from tests.support import API, Mailbox, Service, bearer, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def pg_settings(pg_settings: Settings) -> Settings:
    return pg_settings.model_copy(update={"rate_limit_enabled": False})


@pytest.fixture
async def twin(pg_settings: Settings, smtp: tuple[int, Mailbox], svc: Service
               ) -> AsyncIterator[Service]:
    """A second instance of the service on the same database and Redis as `svc`."""
    async with running(pg_settings, smtp[1]) as other:
        for instance in (svc, other):
            async with asyncio.timeout(10):
                await instance.runtime.bus.ready.wait()
        yield other


async def settled(instance: Service) -> None:
    """Wait until this instance has handled every bus message published so far: Redis delivers
    a subscriber's messages in order, so a marker published now arrives after all of them."""
    arrived = asyncio.Event()
    instance.runtime.bus.subscribe("test.marker", lambda _payload: arrived.set())
    await instance.runtime.bus.publish("test.marker", {})
    async with asyncio.timeout(10):
        await arrived.wait()


async def warm(instance: Service, rid: str) -> dict[str, Any]:
    """Read a recipe anonymously until this instance serves it from its head cache."""
    await settled(instance)
    body = await _read(instance, rid)
    assert caches(instance.runtime).heads.get(uuid.UUID(rid)) is not None
    return body


async def _published(svc: Service, owner: dict[str, str], title: str) -> dict[str, Any]:
    created = await svc.client.post(f"{API}/recipes", json={**soup(title), "visibility": "public"},
                                    headers=owner)
    assert created.status_code == 201, created.text
    published = await svc.client.post(f"{API}/recipes/{created.json()['id']}/publish",
                                      headers=owner)
    assert published.status_code == 200, published.text
    recipe: dict[str, Any] = published.json()
    return recipe


def bus_delivery(instance: Service) -> asyncio.Event:
    """Set once `instance` has received a recipe change from the bus. Its caches subscribed
    first, so they have dropped the entry by then: what the reads after it show is the cache's
    doing, not a race with the bus."""
    delivered = asyncio.Event()
    instance.runtime.bus.subscribe(CHANNEL, lambda _payload: delivered.set())
    return delivered


async def _read(instance: Service, rid: str, headers: dict[str, str] | None = None
                ) -> dict[str, Any]:
    reply = await instance.client.get(f"{API}/recipes/{rid}", headers=headers or {})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    body["etag"] = reply.headers["etag"]
    return body


async def test_an_update_on_one_instance_is_served_by_the_other_at_once(
        svc: Service, twin: Service) -> None:
    a, b = svc, twin
    owner = bearer(await a.signed_up("test-version-cache-owner@example.com"))
    recipe = await _published(a, owner, "Twin instance tomato soup")
    rid = recipe["id"]

    # Warm every cache of both instances: anonymous and owner reads, and an anonymous list page.
    before = {}
    for instance in (a, b):
        before[id(instance)] = await warm(instance, rid)
        assert (await _read(instance, rid, owner))["current_version"] == 1
        listed = await instance.client.get(f"{API}/recipes", params={"q": "twin"})
        assert [item["title"] for item in listed.json()["items"]] == ["Twin instance tomato soup"]
    assert before[id(a)]["etag"] == before[id(b)]["etag"]
    old_content = before[id(b)]["content"]

    changed = {**soup("Twin instance pumpkin soup"), "visibility": "public"}
    delivered = bus_delivery(b)
    updated = await a.client.put(f"{API}/recipes/{rid}", json=changed,
                                 headers={**owner, "If-Match": before[id(a)]["etag"]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["current_version"] == 2

    # The next reads on the other instance, as soon as its bus delivered the change (no TTL).
    await asyncio.wait_for(delivered.wait(), 10)
    fresh = await _read(b, rid)
    assert (fresh["current_version"], fresh["content"]["title"]) == (
        2, "Twin instance pumpkin soup")
    assert fresh["etag"] != before[id(b)]["etag"]
    revalidated = await b.client.get(f"{API}/recipes/{rid}",
                                     headers={"If-None-Match": before[id(b)]["etag"]})
    assert revalidated.status_code == 200
    assert revalidated.json()["current_version"] == 2
    assert (await _read(b, rid, owner))["content"]["title"] == "Twin instance pumpkin soup"
    listed = await b.client.get(f"{API}/recipes", params={"q": "twin"})
    assert [item["title"] for item in listed.json()["items"]] == ["Twin instance pumpkin soup"]

    # The old version stays readable, unchanged, on both instances.
    for instance in (a, b):
        v1 = await instance.client.get(f"{API}/recipes/{rid}/versions/1")
        assert v1.status_code == 200
        assert v1.json()["content"] == old_content
        v2 = await instance.client.get(f"{API}/recipes/{rid}/versions/2")
        assert v2.json()["content"]["title"] == "Twin instance pumpkin soup"


async def test_archive_and_favourites_on_one_instance_show_on_the_other_at_once(
        svc: Service, twin: Service) -> None:
    a, b = svc, twin
    owner = bearer(await a.signed_up("test-version-cache-archiver@example.com"))
    fan = bearer(await b.signed_up("test-version-cache-fan@example.com"))
    rid = (await _published(a, owner, "Twin instance lentil stew"))["id"]
    for instance in (a, b):
        assert (await warm(instance, rid))["favorite_count"] == 0
        assert (await _read(instance, rid, fan))["is_favorite"] is False

    delivered = bus_delivery(b)
    assert (await a.client.put(f"{API}/recipes/{rid}/favorite", headers=fan)).status_code == 204
    await asyncio.wait_for(delivered.wait(), 10)
    seen = await _read(b, rid, fan)
    assert (seen["favorite_count"], seen["is_favorite"]) == (1, True)
    assert (await _read(b, rid))["favorite_count"] == 1

    delivered = bus_delivery(b)
    assert (await a.client.delete(f"{API}/recipes/{rid}", headers=owner)).status_code == 204
    await asyncio.wait_for(delivered.wait(), 10)
    assert (await b.client.get(f"{API}/recipes/{rid}")).status_code == 404
    assert (await b.client.get(f"{API}/recipes/{rid}", headers=fan)).status_code == 404
    assert (await _read(b, rid, owner))["status"] == "archived"
    listed = await b.client.get(f"{API}/recipes", params={"q": "lentil"})
    assert listed.json()["items"] == []



async def test_the_bus_listener_stops_when_cancelled_during_a_flood() -> None:
    """Shutdown cancels the listener. On the embedded default (fakeredis, whose reads use Python
    3.11's `wait_for`) a cancellation landing just as a message arrived used to be swallowed and
    the app's shutdown hung; every such cancellation must now end the listener."""
    from fakeredis import FakeAsyncRedis, FakeServer

    from epicura.kit.bus import EventBus
    from epicura.kit.kv import Keys

    for round_ in range(30):
        redis = FakeAsyncRedis(server=FakeServer(), decode_responses=False)
        bus = EventBus(redis, Keys("test-version-cache:"))
        received: list[int] = []

        def collect(payload: dict[str, Any], into: list[int] = received) -> None:
            into.append(payload["n"])

        bus.subscribe("flood", collect)
        listener = asyncio.create_task(bus.run())
        cancelled = asyncio.Event()

        async def flood(bus: EventBus = bus, received: list[int] = received,
                        listener: asyncio.Task[None] = listener,
                        cancelled: asyncio.Event = cancelled) -> None:
            n = 0
            while not listener.done():
                n += 1
                await bus.publish("flood", {"n": n})
                if len(received) >= 5 and not cancelled.is_set():
                    listener.cancel()  # right as a message reaches the listener
                    cancelled.set()
                await asyncio.sleep(0)  # a yield: the listener runs between messages

        flooder = asyncio.create_task(flood())
        try:
            async with asyncio.timeout(10):
                await cancelled.wait()
            done, _ = await asyncio.wait({listener}, timeout=5)
            assert done, f"round {round_}: the listener ignored its cancellation"
        finally:
            while not listener.done():
                listener.cancel()
                await asyncio.wait({listener}, timeout=1)
            await flooder
            await redis.aclose()
