"""Device sync: `GET /device/sync` returns the appliance's library changes since its cursor, as
bundles verified here exactly as an appliance would (SHA-256 and Ed25519 over the bundle's
bytes, with the public keys of `GET /device/signing-keys`)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from epicura.appliances import library, sync
from epicura.appliances.access import issue_device_token
from epicura.appliances.models import PROVISIONED, Appliance
from epicura.config import Settings
from epicura.kit import clock, jobs, signing
from epicura.kit.pagination import InvalidCursor, encode_cursor
from tests.recipes.test_recipe_api import make_recipe, problem_of
from tests.support import API, Mailbox, Service, bearer, running

pytestmark = pytest.mark.anyio
Headers = dict[str, str]


@pytest.fixture
def pg_settings(pg_settings: Settings) -> Settings:
    """These tests make more requests per user than the rate limits allow."""
    return pg_settings.model_copy(update={"rate_limit_enabled": False})


# --- helpers ---------------------------------------------------------------------------------

async def user(svc: Service, name: str) -> tuple[Headers, uuid.UUID]:
    headers = bearer(await svc.signed_up(f"test-sync-{name}-{uuid.uuid4().hex[:6]}@example.com"))
    me = await svc.client.get(f"{API}/users/me", headers=headers)
    return headers, uuid.UUID(me.json()["id"])


async def appliance(svc: Service, owner_id: uuid.UUID | None) -> tuple[uuid.UUID, Headers]:
    """A provisioned appliance (as pairing leaves it) and its device token."""
    now = clock.utcnow()
    row = Appliance(
        serial=f"EPI-{uuid.uuid4().hex[:10]}", model="epicura-1", hw_revision="rev-a",
        lifecycle=PROVISIONED, factory_secret_hash="0" * 64, owner_id=owner_id,
        paired_at=now if owner_id else None, channel="stable", tags=[], online=False,
        settings={}, config_version=0, provisioned_at=now, created_at=now, updated_at=now)
    async with svc.runtime.db.transaction() as session:
        session.add(row)
    token, _ = issue_device_token(svc.runtime, row)
    return row.id, bearer(token)


async def recipe(svc: Service, headers: Headers, title: str, state: str = "public") -> str:
    return str((await make_recipe(svc, headers, state, title=title))["id"])


async def favourite(svc: Service, headers: Headers, recipe_id: str, on: bool = True) -> None:
    method = svc.client.put if on else svc.client.delete
    reply = await method(f"{API}/recipes/{recipe_id}/favorite", headers=headers)
    assert reply.status_code == 204, reply.text


async def new_version(svc: Service, headers: Headers, recipe_id: str, title: str) -> None:
    current = await svc.client.get(f"{API}/recipes/{recipe_id}", headers=headers)
    body = {**current.json()["content"], "title": title, "visibility": "public"}
    body.pop("total_minutes", None)
    reply = await svc.client.put(f"{API}/recipes/{recipe_id}", json=body,
                                 headers={**headers, "If-Match": current.headers["etag"]})
    assert reply.status_code == 200, reply.text


async def synced(svc: Service, device: Headers, cursor: str | None = None,
                 limit: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if cursor is not None:
        params["cursor"] = cursor
    if limit is not None:
        params["limit"] = limit
    reply = await svc.client.get(f"{API}/device/sync", params=params, headers=device)
    assert reply.status_code == 200, reply.text
    page: dict[str, Any] = reply.json()
    return page


async def public_keys(svc: Service) -> dict[str, dict[str, Any]]:
    reply = await svc.client.get(f"{API}/device/signing-keys")
    assert reply.status_code == 200, reply.text
    return {key["key_id"]: key for key in reply.json()["keys"]}


def verified(change: dict[str, Any], keys: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What an appliance does before installing a bundle; returns the bundle's document."""
    data = change["bundle"].encode()
    assert hashlib.sha256(data).hexdigest() == change["sha256"]
    assert signing.verify(keys[change["key_id"]]["public_key"], data, change["signature"])
    assert data == orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS)  # canonical
    document: dict[str, Any] = orjson.loads(data)
    assert (document["recipe_id"], document["version"]) == (change["recipe_id"],
                                                            change["version"])
    assert document["format"] == sync.BUNDLE_FORMAT
    return document


def versions_of(page: dict[str, Any]) -> dict[str, int]:
    return {change["recipe_id"]: change["version"] for change in page["changes"]}


async def nudges(svc: Service, appliance_id: uuid.UUID) -> list[dict[str, Any]]:
    topic = f"epicura/v1/{appliance_id}/down/sync"
    async with svc.runtime.db.sessions() as session:
        rows = await session.scalars(select(jobs.Job).where(jobs.Job.kind == "mqtt.publish")
                                     .order_by(jobs.Job.created_at))
        return [job.payload["payload"] for job in rows if job.payload.get("topic") == topic]


# --- the library through sync ----------------------------------------------------------------

async def test_sync_follows_favourites_versions_and_archive(api: Service) -> None:
    author, _ = await user(api, "author")
    cook, cook_id = await user(api, "cook")
    soup_id = await recipe(api, author, "Tomato soup")
    stew_id = await recipe(api, author, "Lentil stew")
    await recipe(api, author, "Not a favourite")
    mine = await recipe(api, cook, "My own draft", state="draft")
    for rid in (soup_id, stew_id, mine):
        await favourite(api, cook, rid)
    _, device = await appliance(api, cook_id)

    first = await synced(api, device)
    keys = await public_keys(api)
    assert versions_of(first) == {soup_id: 1, stew_id: 1, mine: 1}
    assert (first["deleted"], first["has_more"]) == ([], False)
    for change in first["changes"]:
        document = verified(change, keys)
        published = await api.client.get(
            f"{API}/recipes/{change['recipe_id']}/versions/1", headers=cook)
        assert document["content"] == published.json()["content"]
    again = await synced(api, device, first["cursor"])
    assert (again["changes"], again["deleted"], again["has_more"]) == ([], [], False)

    await new_version(api, author, soup_id, "Roasted tomato soup")
    after_edit = await synced(api, device, again["cursor"])
    assert versions_of(after_edit) == {soup_id: 2}
    assert verified(after_edit["changes"][0], keys)["content"]["title"] == "Roasted tomato soup"

    assert (await api.client.delete(f"{API}/recipes/{stew_id}", headers=author)).status_code == 204
    after_archive = await synced(api, device, after_edit["cursor"])
    assert (after_archive["changes"], after_archive["deleted"]) == ([], [stew_id])

    await favourite(api, cook, mine, on=False)
    after_unfavourite = await synced(api, device, after_archive["cursor"])
    assert (after_unfavourite["changes"], after_unfavourite["deleted"]) == ([], [mine])

    fresh = await synced(api, device)  # a first sync never lists tombstones
    assert (versions_of(fresh), fresh["deleted"]) == ({soup_id: 2}, [])


async def test_paging_with_has_more(svc: Service) -> None:
    author, _ = await user(svc, "author")
    cook, cook_id = await user(svc, "cook")
    ids = [await recipe(svc, author, f"Soup number {n}") for n in range(5)]
    for rid in ids:
        await favourite(svc, cook, rid)
    _, device = await appliance(svc, cook_id)

    first = await synced(svc, device, limit=2)
    assert (len(first["changes"]), first["has_more"]) == (2, True)
    edited = first["changes"][0]["recipe_id"]
    await new_version(svc, author, edited, "Soup, again")  # a change in the middle of a sync
    second = await synced(svc, device, first["cursor"], limit=2)
    third = await synced(svc, device, second["cursor"], limit=2)
    assert [(len(p["changes"]), p["has_more"]) for p in (second, third)] == [(2, True),
                                                                              (2, False)]
    seen = [c["recipe_id"] for page in (first, second, third) for c in page["changes"]]
    assert sorted(set(seen)) == sorted(ids) and len(seen) == 6
    assert third["changes"][-1]["recipe_id"] == edited and third["changes"][-1]["version"] == 2
    assert (await synced(svc, device, third["cursor"]))["changes"] == []


async def test_concurrent_favourites_number_every_change(svc: Service) -> None:
    author, _ = await user(svc, "author")
    cook, cook_id = await user(svc, "cook")
    ids = [await recipe(svc, author, f"Dish {n}") for n in range(8)]
    _, first_device = await appliance(svc, cook_id)
    _, second_device = await appliance(svc, cook_id)
    await synced(svc, first_device)  # both libraries exist before the race
    await synced(svc, second_device)
    await asyncio.gather(*(favourite(svc, cook, rid) for rid in ids))
    for device in (first_device, second_device):
        page = await synced(svc, device)
        assert sorted(versions_of(page)) == sorted(ids)


async def test_device_routes_refuse_other_credentials(svc: Service) -> None:
    author, _ = await user(svc, "author")
    cook, cook_id = await user(svc, "cook")
    _, stranger_id = await user(svc, "stranger")
    await favourite(svc, cook, await recipe(svc, author, "Private matters"))
    _, device = await appliance(svc, cook_id)
    _, strangers_device = await appliance(svc, stranger_id)

    problem_of(await svc.client.get(f"{API}/device/sync", headers=cook), 401, "unauthorized")
    problem_of(await svc.client.get(f"{API}/device/sync"), 401, "unauthorized")
    problem_of(await svc.client.get(f"{API}/device/sync", headers=bearer("not.a.token")),
               401, "unauthorized")
    own = await synced(svc, device)
    assert len(own["changes"]) == 1
    theirs = await synced(svc, strangers_device)
    assert (theirs["changes"], theirs["deleted"]) == ([], [])
    # A cursor is only a position: another appliance's cursor gives nothing of this library.
    assert (await synced(svc, strangers_device, own["cursor"]))["changes"] == []
    for bad in ("%%%", "eyJ4IjoxfQ", "W10"):
        problem_of(await svc.client.get(f"{API}/device/sync", params={"cursor": bad},
                                        headers=device), 400, "invalid_cursor")


async def test_unpaired_appliance_gets_tombstones_then_the_new_owners_library(
    svc: Service,
) -> None:
    author, _ = await user(svc, "author")
    cook, cook_id = await user(svc, "cook")
    heir, heir_id = await user(svc, "heir")
    kept = await recipe(svc, author, "Bread")
    await favourite(svc, cook, kept)
    await favourite(svc, heir, await recipe(svc, author, "Cake"))
    appliance_id, device = await appliance(svc, cook_id)
    before = await synced(svc, device)

    async with svc.runtime.db.transaction() as session:  # unpaired, pairing code unaware of sync
        await session.execute(update(Appliance).where(Appliance.id == appliance_id)
                              .values(owner_id=None))
    unpaired = await synced(svc, device, before["cursor"])
    assert (unpaired["changes"], unpaired["deleted"]) == ([], [kept])
    assert (await synced(svc, device))["changes"] == []

    async with svc.runtime.db.transaction() as session:  # claimed by someone else
        await session.execute(update(Appliance).where(Appliance.id == appliance_id)
                              .values(owner_id=heir_id))
        await library.owner_changed(session, appliance_id)
    assert (await nudges(svc, appliance_id))[-1] == {"reason": "owner_changed"}
    claimed = await synced(svc, device, unpaired["cursor"])
    assert len(claimed["changes"]) == 1 and claimed["deleted"] == []
    assert verified(claimed["changes"][0], await public_keys(svc))["content"]["title"] == "Cake"


# --- nudges, pins and reports ----------------------------------------------------------------

async def test_library_changes_nudge_the_appliances_in_the_same_transaction(svc: Service) -> None:
    author, _ = await user(svc, "author")
    cook, cook_id = await user(svc, "cook")
    _, other_id = await user(svc, "other")
    kitchen, _ = await appliance(svc, cook_id)
    cellar, _ = await appliance(svc, cook_id)
    elsewhere, _ = await appliance(svc, other_id)
    rid = await recipe(svc, author, "Risotto")

    await favourite(svc, cook, rid)
    for appliance_id in (kitchen, cellar):
        assert await nudges(svc, appliance_id) == [{"reason": "favorite_added"}]
    assert await nudges(svc, elsewhere) == []
    await favourite(svc, cook, rid)  # already a favourite: nothing changes, nobody is nudged
    assert len(await nudges(svc, kitchen)) == 1

    await new_version(svc, author, rid, "Mushroom risotto")
    assert (await nudges(svc, kitchen))[-1] == {"reason": "recipe_version"}
    missing = await svc.client.put(f"{API}/recipes/{uuid.uuid4()}/favorite", headers=cook)
    assert missing.status_code == 404
    await favourite(svc, cook, rid, on=False)
    await svc.client.delete(f"{API}/recipes/{rid}", headers=author)
    assert [n["reason"] for n in await nudges(svc, cellar)] == [
        "favorite_added", "recipe_version", "favorite_removed"]  # archived: no longer held


async def test_many_holders_are_nudged_by_one_fan_out_job(
    svc: Service, monkeypatch: pytest.MonkeyPatch,
) -> None:
    author, _ = await user(svc, "author")
    cook, cook_id = await user(svc, "cook")
    rid = await recipe(svc, author, "Popular soup")
    holders = [(await appliance(svc, cook_id))[0] for _ in range(3)]
    await favourite(svc, cook, rid)
    monkeypatch.setattr(library, "INLINE_NUDGES", 2)
    monkeypatch.setattr(library, "FANOUT_BATCH", 2)

    await new_version(svc, author, rid, "Popular soup, improved")
    async with svc.runtime.db.sessions() as session:
        [job] = (await session.scalars(
            select(jobs.Job).where(jobs.Job.kind == library.FANOUT_JOB))).all()
    for appliance_id in holders:
        assert await nudges(svc, appliance_id) == [{"reason": "favorite_added"}]
    ctx = jobs.JobContext(db=svc.runtime.db, sealer=svc.runtime.sealer,
                          extras={"runtime": svc.runtime})
    await library.fan_out_nudges(ctx, job.payload)
    for appliance_id in holders:
        assert (await nudges(svc, appliance_id))[-1] == {"reason": "recipe_version"}


async def test_device_pins_official_recipes_only(svc: Service) -> None:
    from tests.recipes.test_recipe_api import admin_headers

    kitchen = await admin_headers(svc, f"test-sync-admin-{uuid.uuid4().hex[:6]}@example.com")
    author, _ = await user(svc, "author")
    _, cook_id = await user(svc, "cook")
    official = str((await make_recipe(svc, kitchen, "public", is_official=True,
                                      title="House bread"))["id"])
    ordinary = await recipe(svc, author, "Somebody's bread")
    _, device = await appliance(svc, cook_id)

    assert (await svc.client.put(f"{API}/device/pins/{official}", headers=device)
            ).status_code == 204
    problem_of(await svc.client.put(f"{API}/device/pins/{ordinary}", headers=device),
               404, "not_found")
    problem_of(await svc.client.put(f"{API}/device/pins/{official}", headers=author),
               401, "unauthorized")
    pinned = await synced(svc, device)
    assert versions_of(pinned) == {official: 1}
    assert (await svc.client.delete(f"{API}/device/pins/{official}", headers=device)
            ).status_code == 204
    assert (await synced(svc, device, pinned["cursor"]))["deleted"] == [official]


async def test_sync_report_is_stored_through_the_bridge_registry(svc: Service) -> None:
    from epicura.bridge import handlers, payloads

    _, cook_id = await user(svc, "cook")
    appliance_id, _ = await appliance(svc, cook_id)
    handlers.load()
    handler = handlers.handler_for("sync")
    assert handler is not None
    installed = [{"recipe_id": str(uuid.uuid4()), "version": 3, "sha256": "ab" * 32}]
    for cursor in ("c1", "c2"):  # the latest report wins
        body = {"v": 1, "id": str(uuid.uuid4()), "ts": 1_700_000_000_000, "cursor": cursor,
                "installed": installed}
        message = payloads.validate(appliance_id, "sync", body, 1_700_000_000_000)
        async with svc.runtime.db.transaction() as session:
            await handler(handlers.HandlerContext(svc.runtime, session, clock.utcnow()), message)
    async with svc.runtime.db.sessions() as session:
        report = await sync.latest_report(session, appliance_id)
    assert report is not None
    assert (report["cursor"], report["installed"]) == ("c2", installed)


# --- keys ------------------------------------------------------------------------------------

async def test_key_rotation_keeps_old_bundles_verifiable(svc: Service) -> None:
    author, _ = await user(svc, "author")
    cook, cook_id = await user(svc, "cook")
    rid = await recipe(svc, author, "Gazpacho")
    await favourite(svc, cook, rid)
    _, device = await appliance(svc, cook_id)
    old = (await synced(svc, device))["changes"][0]

    async with svc.runtime.db.transaction() as session:  # what `epicura keys generate` does
        fresh = await sync.keystore(svc.runtime).generate(session, activate=True)
    keys = await public_keys(svc)
    assert (keys[old["key_id"]]["status"], keys[fresh.key_id]["status"]) == ("retired", "active")
    assert keys[fresh.key_id]["endorsed_by"] == old["key_id"]
    assert signing.verify(keys[old["key_id"]]["public_key"],
                          signing.endorsement_message(fresh.key_id, fresh.public_key),
                          keys[fresh.key_id]["endorsement"])

    await new_version(svc, author, rid, "Gazpacho, chilled")
    new = (await synced(svc, device))["changes"][0]
    assert (new["key_id"], new["version"]) == (fresh.key_id, 2)
    verified(new, keys)
    verified(old, keys)  # the retired key is still published: the old bundle still verifies
    assert not signing.verify(keys[fresh.key_id]["public_key"], old["bundle"].encode(),
                              old["signature"])


async def test_production_refuses_to_sign_without_a_key(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox],
) -> None:
    cook, cook_id = await user(svc, "cook")
    author, _ = await user(svc, "author")
    await favourite(svc, cook, await recipe(svc, author, "Soup"))
    production = pg_settings.model_copy(update={"epicura_env": "production"})
    async with running(production, smtp[1]) as prod:
        _, device = await appliance(prod, cook_id)
        refused = await prod.client.get(f"{API}/device/sync", headers=device)
        problem_of(refused, 503, "signing_key_missing")
        assert refused.headers["retry-after"]
        assert (await prod.client.get(f"{API}/device/signing-keys")).json() == {"keys": []}
        async with prod.runtime.db.transaction() as session:  # `epicura keys generate`
            await sync.keystore(prod.runtime).generate(session)
        page = await synced(prod, device)
        verified(page["changes"][0], await public_keys(prod))


async def test_a_page_costs_the_same_queries_whatever_its_size(svc: Service) -> None:
    from sqlalchemy import event

    author, _ = await user(svc, "author")
    cook, cook_id = await user(svc, "cook")
    ids = [await recipe(svc, author, f"Course {n}") for n in range(12)]
    for rid in ids:
        await favourite(svc, cook, rid)
    _, device = await appliance(svc, cook_id)
    await synced(svc, device, limit=1)  # the library is built and the key made: steady state
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = svc.runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        small = await synced(svc, device, limit=1)
        small_cost = len(statements)
        statements.clear()
        large = await synced(svc, device, limit=12)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert (len(small["changes"]), len(large["changes"])) == (1, 12)
    assert len(statements) == small_cost <= 5, statements


@given(st.one_of(
    st.text(max_size=60),
    st.dictionaries(st.sampled_from(["s", "r", "f", "x"]),
                    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                              st.floats(),
                              st.text(max_size=40), st.uuids().map(str)), max_size=4)
    .map(encode_cursor),
    st.integers().map(lambda n: base64.urlsafe_b64encode(
        f'{{"s": {n}, "r": "{uuid.UUID(int=0)}"}}'.encode()).decode()),
))
@hypothesis_settings(max_examples=300, deadline=None)
def test_any_cursor_is_a_position_or_invalid_cursor(cursor: str) -> None:
    try:
        position = sync.decode_position(cursor)
    except InvalidCursor:
        return
    assert 0 <= position.seq < 2**63
    assert sync.decode_position(sync.encode_position(position)) == position
