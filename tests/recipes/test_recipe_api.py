"""The recipes API as the spec writes it: publish checks, who may do what (T17/T19 for recipes),
archiving, immutable versions with diff and restore, favourites, tags, capability profiles, and
the HTTP caching contract (`ETag`, 304, `If-Match` 412/428, `Cache-Control`)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from epicura.auth import service as auth_service
from epicura.recipes.models import Recipe, RecipeVersion
from tests.recipes.test_recipe_flow import soup
from tests.support import API, STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"
Headers = dict[str, str]




# --- helpers shared with the other recipe test files --------------------------------------------

async def admin_headers(svc: Service, email: str) -> Headers:
    """An admin (as `epicura admin create` makes one), logged in through the API."""
    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, email, STRONG_PASSWORD, "Kitchen")
    reply = await svc.login(email)
    assert reply.status_code == 200, reply.text
    return bearer(reply.json())


async def row_counts(svc: Service) -> tuple[int, int]:
    async with svc.runtime.db.sessions() as session:
        recipes = await session.scalar(select(func.count()).select_from(Recipe))
        versions = await session.scalar(select(func.count()).select_from(RecipeVersion))
    return int(recipes or 0), int(versions or 0)


async def make_recipe(svc: Service, headers: Headers, state: str = "draft",
                      **content: Any) -> dict[str, Any]:
    """A recipe in `state`: draft (private draft), private (published, private) or public
    (published, public)."""
    body = {**soup(), **content}
    if state == "public":
        body["visibility"] = "public"
    created = await svc.client.post(f"{API}/recipes", json=body, headers=headers)
    assert created.status_code == 201, created.text
    recipe: dict[str, Any] = created.json()
    if state in ("private", "public"):
        published = await svc.client.post(f"{API}/recipes/{recipe['id']}/publish", headers=headers)
        assert published.status_code == 200, published.text
        recipe = published.json()
    assert (recipe["status"], recipe["visibility"]) == {
        "draft": ("draft", "private"), "private": ("published", "private"),
        "public": ("published", "public")}[state]
    return recipe


def problem_of(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = reply.json()
    assert body["code"] == code, body
    return body


# --- publishing -----------------------------------------------------------------------------------

def _violating_recipe() -> dict[str, Any]:
    body = soup("Everything at once")
    body["ingredients"].append({"key": "flour", "name": "Flour", "quantity": 6000, "unit": "g"})
    body["steps"] = [
        {"title": "Sear", "action": "heat", "params": {"temperature_c": 200, "duration_s": 60}},
        {"title": "Whisk", "action": "stir", "params": {"speed": 15, "duration_s": 30}},
        {"title": "Slow cook", "action": "heat",
         "params": {"temperature_c": 90, "duration_s": 50_000}},
        {"title": "Weigh the flour", "action": "weigh", "params": {"target_weight_g": 6000},
         "ingredient_keys": ["flour"]},
        {"title": "Proof", "action": "heat", "params": {"temperature_c": 20, "duration_s": 600}},
        {"title": "Fine", "action": "blend", "params": {"speed": 5, "duration_s": 10}},
    ]
    body["requires"] = {"profiles": ["epicura-1/rev-a", "epicura-9/rev-z"]}
    return body


async def test_publish_names_every_violation(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-api-violations@example.com"))
    created = await api.client.post(f"{API}/recipes", json=_violating_recipe(), headers=owner)
    assert created.status_code == 201, created.text  # a draft may be anything sane
    rid = created.json()["id"]
    counts = await row_counts(api)

    refused = await api.client.post(f"{API}/recipes/{rid}/publish", headers=owner)
    problem = problem_of(refused, 422, "step_out_of_range")
    found = sorted(
        ((e.get("step", -1), e["field"], e["value"], e.get("limit"), e.get("profile"), e["type"])
         for e in problem["errors"]), key=repr)
    rev_a = "epicura-1/rev-a"
    assert found == sorted([
        (0, "temperature_c", 200, 180, rev_a, "above_max"),
        (1, "speed", 15, 10, rev_a, "above_max"),
        (2, "duration_s", 50_000, 43_200, rev_a, "above_max"),
        (3, "target_weight_g", 6000, 5000, rev_a, "above_max"),
        (4, "temperature_c", 20, 37, rev_a, "below_min"),
        (-1, "requires.profiles", "epicura-9/rev-z", None, "epicura-9/rev-z", "unknown_profile"),
    ], key=repr)
    by_step = {e.get("step"): e for e in problem["errors"]}
    assert by_step[0]["loc"] == ["steps", 0, "params", "temperature_c"]
    assert "step 0" in by_step[0]["msg"] and "180" in by_step[0]["msg"]
    assert by_step[None]["loc"][:2] == ["requires", "profiles"]

    assert await row_counts(api) == counts
    still = await api.client.get(f"{API}/recipes/{rid}", headers=owner)
    assert (still.json()["status"], still.json()["current_version"]) == ("draft", 1)
    listed = await api.client.get(f"{API}/recipes", params={"q": "everything"})
    assert listed.json()["items"] == []


async def test_a_published_recipe_stays_cookable(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-api-cookable@example.com"))
    recipe = await make_recipe(api, owner, "public")
    rid = recipe["id"]
    etag = (await api.client.get(f"{API}/recipes/{rid}", headers=owner)).headers["etag"]
    counts = await row_counts(api)
    refused = await api.client.put(f"{API}/recipes/{rid}", json=soup(temperature=220),
                                   headers={**owner, "If-Match": etag})
    [error] = problem_of(refused, 422, "step_out_of_range")["errors"]
    assert (error["step"], error["field"], error["value"], error["limit"]) == (
        2, "temperature_c", 220, 180)
    assert await row_counts(api) == counts
    bad_profile = {**soup(), "requires": {"profiles": ["nobody/none"]}}
    refused = await api.client.put(f"{API}/recipes/{rid}", json=bad_profile,
                                   headers={**owner, "If-Match": etag})
    assert problem_of(refused, 422, "step_out_of_range")["errors"][0]["type"] == "unknown_profile"
    assert await row_counts(api) == counts


async def test_capability_profiles_are_public(api: Service) -> None:
    reply = await api.client.get(f"{API}/capability-profiles")
    assert reply.status_code == 200
    [profile] = [p for p in reply.json()
                 if (p["model"], p["hw_revision"]) == ("epicura-1", "rev-a")]
    assert profile == {
        "model": "epicura-1", "hw_revision": "rev-a", "min_temp_c": 37, "max_temp_c": 180,
        "speed_min": 0, "speed_max": 10, "max_duration_s": 12 * 3600, "bowl_capacity_ml": 2200,
        "max_weight_g": 5000, "reverse": True,
        "actions": ["heat", "stir", "blend", "knead", "steam", "weigh", "await_user", "rest",
                    "manual"],
    }


# --- who may do what ------------------------------------------------------------------------------

STATES = ("draft", "private", "public")
CALLERS = ("owner", "other", "anonymous", "admin")


def _expected(kind: str, state: str, caller: str) -> str:
    """'ok', or the refusal: 401, 403 or 404 (another user's invisible recipe is a 404)."""
    readable = state == "public" or caller in ("owner", "admin")
    if kind == "read":
        return "ok" if readable else "404"
    if caller == "anonymous":
        return "401"
    if not readable:
        return "404"
    if kind == "favorite":
        return "ok"
    return "ok" if caller in ("owner", "admin") else "403"


async def test_visibility_and_ownership_matrix(svc: Service) -> None:
    people = {
        "owner": bearer(await svc.signed_up("test-recipe-api-matrix-owner@example.com")),
        "other": bearer(await svc.signed_up("test-recipe-api-matrix-other@example.com")),
        "anonymous": {},
        "admin": await admin_headers(svc, "test-recipe-api-matrix-admin@example.com"),
    }
    missing = str(uuid.uuid4())
    checked = 0
    for state in STATES:
        for caller in CALLERS:
            recipe = await make_recipe(svc, people["owner"], state, title=f"{state} {caller}")
            rid = recipe["id"]
            etag = (await svc.client.get(f"{API}/recipes/{rid}", headers=people["owner"])
                    ).headers["etag"]
            as_caller = people[caller]
            counts = await row_counts(svc)
            operations: list[tuple[str, str, str, dict[str, Any]]] = [
                ("read", "GET", "", {}),
                ("read", "GET", "/versions", {}),
                ("read", "GET", "/versions/1", {}),
                ("read", "GET", "/versions/1/diff?against=1", {}),
                ("favorite", "PUT", "/favorite", {}),
                ("favorite", "DELETE", "/favorite", {}),
                ("edit", "PUT", "", {"json": {**soup("Renamed"), "visibility": "private"},
                                     "headers": {"If-Match": etag}}),
                ("edit", "POST", "/publish", {}),
                ("edit", "POST", "/versions/1/restore", {}),
                ("edit", "DELETE", "", {}),
            ]
            refused = False
            for kind, method, suffix, extra in operations:
                want = _expected(kind, state, caller)
                headers = {**as_caller, **extra.get("headers", {})}
                reply = await svc.client.request(method, f"{API}/recipes/{rid}{suffix}",
                                                 json=extra.get("json"), headers=headers)
                where = (state, caller, method, suffix)
                if want == "ok":
                    assert reply.status_code in (200, 204), (where, reply.text)
                else:
                    refused = True
                    code = {"401": "unauthorized", "403": "forbidden", "404": "not_found"}[want]
                    problem = problem_of(reply, int(want), code)
                    if want == "404":  # the same answer as for a recipe that does not exist
                        ghost = await svc.client.request(
                            method, f"{API}/recipes/{missing}{suffix}",
                            json=extra.get("json"), headers=headers)
                        assert ghost.status_code == 404 and ghost.json() == problem, where
                checked += 1
            if refused and caller != "admin":
                assert await row_counts(svc) == counts
                seen = (await svc.client.get(f"{API}/recipes/{rid}", headers=people["owner"])
                        ).json()
                assert (seen["status"], seen["current_version"], seen["favorite_count"]) == (
                    recipe["status"], 1, 0), (state, caller)
    assert checked == len(STATES) * len(CALLERS) * 10


async def test_official_recipes_are_edited_by_admins_only(svc: Service) -> None:
    kitchen = await admin_headers(svc, "test-recipe-api-official-admin@example.com")
    colleague = await admin_headers(svc, "test-recipe-api-official-admin2@example.com")
    user = bearer(await svc.signed_up("test-recipe-api-official-user@example.com"))
    official = await make_recipe(svc, kitchen, "public", title="Official soup", is_official=True)
    rid = official["id"]
    assert official["is_official"] is True
    draft = await make_recipe(svc, kitchen, "draft", title="Official draft", is_official=True)

    read = await svc.client.get(f"{API}/recipes/{rid}", headers=user)
    assert read.status_code == 200 and read.json()["is_official"] is True
    etag = read.headers["etag"]
    counts = await row_counts(svc)
    for method, suffix, body in (("PUT", "", soup()), ("POST", "/publish", None),
                                 ("POST", "/versions/1/restore", None), ("DELETE", "", None)):
        reply = await svc.client.request(method, f"{API}/recipes/{rid}{suffix}", json=body,
                                         headers={**user, "If-Match": etag})
        problem_of(reply, 403, "forbidden")
        hidden = await svc.client.request(method, f"{API}/recipes/{draft['id']}{suffix}",
                                          json=body, headers={**user, "If-Match": etag})
        problem_of(hidden, 404, "not_found")
    assert await row_counts(svc) == counts

    edited = await svc.client.put(f"{API}/recipes/{rid}", json={**soup("Official soup II"),
                                                                "visibility": "public"},
                                  headers={**colleague, "If-Match": etag})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["current_version"], edited.json()["is_official"]) == (2, True)
    versions = (await svc.client.get(f"{API}/recipes/{rid}/versions")).json()
    assert versions[0]["author"] != official["owner_id"]  # the colleague wrote version 2

    sneaky = await svc.client.put(f"{API}/recipes/{rid}",
                                  json={**soup(), "is_official": False},
                                  headers={**colleague, "If-Match": edited.headers["etag"]})
    problem_of(sneaky, 422, "validation_failed")
    own = await make_recipe(svc, user, "draft")
    for extra in ({"is_official": True}, {"owner_id": str(uuid.uuid4())}, {"status": "published"},
                  {"current_version": 9}, {"favorite_count": 1000}):
        etag = (await svc.client.get(f"{API}/recipes/{own['id']}", headers=user)).headers["etag"]
        reply = await svc.client.put(f"{API}/recipes/{own['id']}", json={**soup(), **extra},
                                     headers={**user, "If-Match": etag})
        assert problem_of(reply, 422, "validation_failed")["errors"][0]["loc"] == [
            "body", next(iter(extra))]
    refused = await svc.client.post(f"{API}/recipes", json={**soup(), "is_official": True},
                                    headers=user)
    problem_of(refused, 403, "official_requires_admin")


async def test_archived_recipes_leave_lists_and_refuse_edits(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-api-archive-owner@example.com"))
    fan = bearer(await api.signed_up("test-recipe-api-archive-fan@example.com"))
    recipe = await make_recipe(api, owner, "public", tags=["archivable"])
    keep = await make_recipe(api, owner, "public", title="Kept soup", tags=["archivable"])
    rid = recipe["id"]
    assert (await api.client.put(f"{API}/recipes/{rid}/favorite", headers=fan)).status_code == 204
    etag = (await api.client.get(f"{API}/recipes/{rid}", headers=owner)).headers["etag"]

    assert (await api.client.delete(f"{API}/recipes/{rid}", headers=owner)).status_code == 204

    lists = [({}, {}), ({}, owner), ({"mine": "true"}, owner), ({"favorites": "true"}, fan),
             ({"q": "tomato"}, {}), ({"q": "tomato"}, owner), ({"tags": "archivable"}, {}),
             ({"sort": "title"}, owner), ({"sort": "popular"}, {})]
    for params, headers in lists:
        listed = await api.client.get(f"{API}/recipes", params=params, headers=headers)
        ids = [item["id"] for item in listed.json()["items"]]
        assert rid not in ids, params
        if not params.get("favorites"):
            assert keep["id"] in ids, params
    tags = (await api.client.get(f"{API}/recipes/tags")).json()
    assert {"tag": "archivable", "count": 1} in tags

    mine = await api.client.get(f"{API}/recipes/{rid}", headers=owner)
    assert mine.status_code == 200 and mine.json()["status"] == "archived"
    assert mine.headers["cache-control"] == "private, no-cache"
    for headers in ({}, fan):
        problem_of(await api.client.get(f"{API}/recipes/{rid}", headers=headers), 404, "not_found")
    versions = await api.client.get(f"{API}/recipes/{rid}/versions", headers=owner)
    assert [v["version"] for v in versions.json()] == [1]

    counts = await row_counts(api)
    for method, suffix, body in (("PUT", "", soup()), ("POST", "/publish", None),
                                 ("POST", "/versions/1/restore", None)):
        reply = await api.client.request(method, f"{API}/recipes/{rid}{suffix}", json=body,
                                         headers={**owner, "If-Match": mine.headers["etag"]})
        problem_of(reply, 409, "recipe_archived")
    stale = await api.client.put(f"{API}/recipes/{rid}", json=soup(),
                                 headers={**owner, "If-Match": etag})
    assert stale.status_code in (409, 412)
    assert await row_counts(api) == counts
    assert (await api.client.get(f"{API}/recipes/{rid}", headers=owner)).json()["status"] == (
        "archived")


# --- versions -------------------------------------------------------------------------------------

async def test_versions_diff_by_ingredient_key_and_restore(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-api-versions@example.com"))
    owner_id = (await api.client.get(f"{API}/users/me", headers=owner)).json()["id"]
    created = await api.client.post(f"{API}/recipes", json=soup(), headers=owner)
    rid, v1_etag = created.json()["id"], created.headers["etag"]
    v1 = (await api.client.get(f"{API}/recipes/{rid}/versions/1", headers=owner)).json()

    second = soup()
    onion, tomato, _basil = second["ingredients"]
    second["ingredients"] = [
        {**tomato, "quantity": 900},
        {"key": "garlic", "name": "Garlic", "quantity": 2, "unit": "clove"},
        onion,  # moved, otherwise unchanged: not a change
    ]
    second["summary"] = "More tomato, garlic instead of basil"
    updated = await api.client.put(f"{API}/recipes/{rid}", json=second,
                                   headers={**owner, "If-Match": v1_etag})
    assert updated.status_code == 200, updated.text
    assert updated.json()["current_version"] == 2

    diff = await api.client.get(f"{API}/recipes/{rid}/versions/2/diff", params={"against": 1},
                                headers=owner)
    assert diff.status_code == 200
    assert (diff.json()["version"], diff.json()["against"]) == (2, 1)
    changes = {c["path"]: c for c in diff.json()["changes"] if c["path"].startswith("ingredients")}
    assert set(changes) == {"ingredients[tomato].quantity", "ingredients[basil]",
                            "ingredients[garlic]"}
    assert changes["ingredients[tomato].quantity"]["change"] == "changed"
    assert float(changes["ingredients[tomato].quantity"]["before"]) == 800
    assert float(changes["ingredients[tomato].quantity"]["after"]) == 900
    assert changes["ingredients[basil]"]["change"] == "removed"
    assert changes["ingredients[basil]"]["before"]["name"] == "Basil"
    assert changes["ingredients[garlic]"]["change"] == "added"
    assert changes["ingredients[garlic]"]["after"]["unit"] == "clove"
    backwards = await api.client.get(f"{API}/recipes/{rid}/versions/1/diff",
                                     params={"against": 2}, headers=owner)
    kinds = {c["path"]: c["change"] for c in backwards.json()["changes"]}
    assert (kinds["ingredients[basil]"], kinds["ingredients[garlic]"]) == ("added", "removed")

    restored = await api.client.post(f"{API}/recipes/{rid}/versions/1/restore", headers=owner)
    assert restored.status_code == 200, restored.text
    assert restored.json()["current_version"] == 3
    assert restored.json()["content"] == v1["content"]
    v3 = await api.client.get(f"{API}/recipes/{rid}/versions/3", headers=owner)
    assert v3.json()["content"] == v1["content"]
    v1_again = await api.client.get(f"{API}/recipes/{rid}/versions/1", headers=owner)
    assert v1_again.json() == v1
    assert v3.headers["etag"] == v1_again.headers["etag"]  # same content, same tag
    same = await api.client.get(f"{API}/recipes/{rid}/versions/3/diff", params={"against": 1},
                                headers=owner)
    assert same.json()["changes"] == []
    v2 = await api.client.get(f"{API}/recipes/{rid}/versions/2", headers=owner)
    assert v2.json()["content"] == updated.json()["content"]

    versions = (await api.client.get(f"{API}/recipes/{rid}/versions", headers=owner)).json()
    assert [(v["version"], v["summary"], v["author"]) for v in versions] == [
        (3, "Restored version 1", owner_id),
        (2, "More tomato, garlic instead of basil", owner_id),
        (1, "Created", owner_id),
    ]
    stamps = [v["created_at"] for v in versions]
    assert stamps == sorted(stamps, reverse=True)
    for number in (0, 4):
        problem_of(await api.client.get(f"{API}/recipes/{rid}/versions/{number}", headers=owner),
                   404, "not_found")
    problem_of(await api.client.get(f"{API}/recipes/{rid}/versions/3/diff",
                                    params={"against": 7}, headers=owner), 404, "not_found")


async def test_versions_cannot_be_changed_in_the_database(svc: Service, pg_database: str) -> None:
    owner = bearer(await svc.signed_up("test-recipe-api-immutable@example.com"))
    rid = (await make_recipe(svc, owner))["id"]
    before = (await svc.client.get(f"{API}/recipes/{rid}/versions/1", headers=owner)).json()
    conn = await asyncpg.connect(pg_database)
    try:
        for sql in ("UPDATE recipe_versions SET summary = 'rewritten' WHERE recipe_id = $1",
                    "UPDATE recipe_versions SET content = '{}'::jsonb WHERE recipe_id = $1",
                    "DELETE FROM recipe_versions WHERE recipe_id = $1"):
            with pytest.raises(asyncpg.RaiseError, match="immutable"):
                await conn.execute(sql, uuid.UUID(rid))
        assert await conn.fetchval(
            "SELECT count(*) FROM recipe_versions WHERE recipe_id = $1", uuid.UUID(rid)) == 1
    finally:
        await conn.close()
    after = (await svc.client.get(f"{API}/recipes/{rid}/versions/1", headers=owner)).json()
    assert after == before


# --- favourites and tags --------------------------------------------------------------------------

async def test_favourites(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-api-fav-owner@example.com"))
    fan = bearer(await api.signed_up("test-recipe-api-fav-fan@example.com"))
    rid = (await make_recipe(api, owner, "public"))["id"]
    other = (await make_recipe(api, owner, "public", title="Other soup"))["id"]

    for _ in range(2):  # idempotent
        assert (await api.client.put(f"{API}/recipes/{rid}/favorite", headers=fan)
                ).status_code == 204
    as_fan = (await api.client.get(f"{API}/recipes/{rid}", headers=fan)).json()
    as_owner = (await api.client.get(f"{API}/recipes/{rid}", headers=owner)).json()
    anonymous = (await api.client.get(f"{API}/recipes/{rid}")).json()
    assert (as_fan["is_favorite"], as_fan["favorite_count"]) == (True, 1)
    assert (as_owner["is_favorite"], as_owner["favorite_count"]) == (False, 1)
    assert (anonymous["is_favorite"], anonymous["favorite_count"]) == (None, 1)
    favs = await api.client.get(f"{API}/recipes", params={"favorites": "true"}, headers=fan)
    assert [item["id"] for item in favs.json()["items"]] == [rid]
    popular = await api.client.get(f"{API}/recipes", params={"sort": "popular"})
    assert [item["id"] for item in popular.json()["items"]] == [rid, other]
    problem_of(await api.client.get(f"{API}/recipes", params={"favorites": "true"}),
               401, "unauthorized")
    problem_of(await api.client.put(f"{API}/recipes/{rid}/favorite"), 401, "unauthorized")

    for _ in range(2):
        assert (await api.client.delete(f"{API}/recipes/{rid}/favorite", headers=fan)
                ).status_code == 204
    as_fan = (await api.client.get(f"{API}/recipes/{rid}", headers=fan)).json()
    assert (as_fan["is_favorite"], as_fan["favorite_count"]) == (False, 0)
    favs = await api.client.get(f"{API}/recipes", params={"favorites": "true"}, headers=fan)
    assert favs.json()["items"] == []


async def test_tags_count_published_public_recipes_only(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-api-tags@example.com"))
    await make_recipe(api, owner, "public", tags=["Spicy", "quick"])
    await make_recipe(api, owner, "public", title="Second", tags=["spicy"])
    await make_recipe(api, owner, "private", title="Hidden", tags=["spicy", "secret"])
    await make_recipe(api, owner, "draft", title="Draft", tags=["spicy", "unfinished"])
    reply = await api.client.get(f"{API}/recipes/tags")
    assert reply.status_code == 200
    assert reply.json() == [{"tag": "spicy", "count": 2}, {"tag": "quick", "count": 1}]
    assert (await api.client.get(f"{API}/recipes/tags", params={"limit": 1})).json() == [
        {"tag": "spicy", "count": 2}]
    problem_of(await api.client.get(f"{API}/recipes/tags", params={"limit": 0}),
               422, "validation_failed")


# --- HTTP caching ---------------------------------------------------------------------------------

async def test_etags_304_and_if_match(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-api-etag@example.com"))
    recipe = await make_recipe(api, owner, "public")
    rid = recipe["id"]
    url = f"{API}/recipes/{rid}"

    anonymous = await api.client.get(url)
    etag = anonymous.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert anonymous.headers["cache-control"] == "public, max-age=60"
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = await api.client.get(url, headers={"If-None-Match": header})
        assert (again.status_code, again.content) == (304, b""), header
        assert again.headers["etag"] == etag
    assert (await api.client.get(url, headers={"If-None-Match": '"nope"'})).status_code == 200

    mine = await api.client.get(url, headers=owner)
    assert mine.headers["cache-control"] == "private, no-cache"
    assert mine.headers["etag"] != etag  # per caller: it carries the favourite flag
    assert (await api.client.get(url, headers={**owner, "If-None-Match": mine.headers["etag"]})
            ).status_code == 304
    draft = await make_recipe(api, owner, "draft", title="Draft")
    assert (await api.client.get(f"{API}/recipes/{draft['id']}", headers=owner)
            ).headers["cache-control"] == "private, no-cache"

    counts = await row_counts(api)
    problem_of(await api.client.put(url, json=soup(), headers=owner), 428, "if_match_required")
    problem_of(await api.client.put(url, json=soup(), headers={**owner, "If-Match": '"stale"'}),
               412, "version_conflict")
    assert await row_counts(api) == counts

    first = await api.client.put(url, json={**soup("First edit"), "visibility": "public"},
                                 headers={**owner, "If-Match": etag})  # the anonymous tag works
    assert first.status_code == 200, first.text
    new_etag = first.headers["etag"]
    assert new_etag not in (etag, mine.headers["etag"])
    lost = await api.client.put(url, json=soup("Lost update"), headers={**owner, "If-Match": etag})
    problem_of(lost, 412, "version_conflict")
    second = await api.client.put(url, json={**soup("Second edit"), "visibility": "public"},
                                  headers={**owner, "If-Match": new_etag})
    assert second.status_code == 200 and second.json()["current_version"] == 3
    star = await api.client.put(url, json={**soup("Third edit"), "visibility": "public"},
                                headers={**owner, "If-Match": "*"})
    assert star.status_code == 200 and star.json()["current_version"] == 4

    fresh = await api.client.get(url, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.json()["content"]["title"] == "Third edit"
    before_fav = fresh.headers["etag"]
    assert (await api.client.put(f"{url}/favorite", headers=owner)).status_code == 204
    after_fav = await api.client.get(url, headers={"If-None-Match": before_fav})
    assert after_fav.status_code == 200 and after_fav.json()["favorite_count"] == 1

    version = await api.client.get(f"{url}/versions/1")
    assert version.status_code == 200 and version.headers["etag"]

    listed = await api.client.get(f"{API}/recipes")
    assert listed.headers["cache-control"] == "public, max-age=15"
    listed_private = await api.client.get(f"{API}/recipes", headers=owner)
    assert listed_private.headers["cache-control"] == "private, no-cache"
