"""Listing and search: every filter and sort of the spec, limits, keyset cursors that walk every
page once and stay stable while other recipes are added and archived, refused cursors, and the
search itself (stemming, misspellings, title before description, ingredient names, language) on
PostgreSQL and, where the behaviour must match, on the embedded default."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from epicura.kit import clock
from tests.recipes.test_recipe_api import admin_headers, make_recipe, problem_of
from tests.support import API, Service, bearer

pytestmark = pytest.mark.anyio
Headers = dict[str, str]




def dish(title: str, *, description: str = "", tags: tuple[str, ...] = (),
         cuisine: str | None = None, category: str | None = None, difficulty: str = "easy",
         minutes: int = 10,
         ingredients: tuple[str, ...] = ("Salt",), language: str = "en") -> dict[str, Any]:
    keys = [f"i{n}" for n in range(len(ingredients))]
    return {
        "title": title, "description": description, "tags": list(tags), "cuisine": cuisine,
        "category": category, "difficulty": difficulty, "language": language,
        "ingredients": [{"key": key, "name": name, "quantity": 1, "unit": "piece"}
                        for key, name in zip(keys, ingredients, strict=True)],
        "steps": [{"title": "Cook", "action": "heat", "ingredient_keys": keys,
                   "params": {"temperature_c": 90, "duration_s": minutes * 60}}],
        # `make_recipe` starts from the soup; these replace every field it would keep.
        "servings": 2, "accessories": [], "nutrition": None,
    }


async def ids(api: Service, params: dict[str, Any] | None = None, headers: Headers | None = None,
              language: str | None = None) -> list[str]:
    extra = {"Accept-Language": language} if language else {}
    reply = await api.client.get(f"{API}/recipes", params=params or {},
                                 headers={**(headers or {}), **extra})
    assert reply.status_code == 200, (params, reply.text)
    return [item["id"] for item in reply.json()["items"]]


@dataclass
class Library:
    chef: Headers
    friend: Headers
    kitchen: Headers
    r: dict[str, str] = field(default_factory=dict)

    def of(self, *names: str) -> set[str]:
        return {self.r[name] for name in names}

    def order(self, *names: str) -> list[str]:
        return [self.r[name] for name in names]


async def library(api: Service, prefix: str) -> Library:
    lib = Library(
        chef=bearer(await api.signed_up(f"test-recipe-search-{prefix}-chef@example.com")),
        friend=bearer(await api.signed_up(f"test-recipe-search-{prefix}-friend@example.com")),
        kitchen=await admin_headers(api, f"test-recipe-search-{prefix}-kitchen@example.com"),
    )
    book = [
        ("soup", lib.chef, "public", dish(
            "Creamy tomato soup", description="A smooth soup of ripe tomatoes.",
            tags=("vegetarian", "quick"), cuisine="italian", category="soup", minutes=17,
            ingredients=("Tomatoes", "Onion"))),
        ("roast", lib.chef, "public", dish(
            "Roasted chicken with lemon", tags=("meat", "sunday"), cuisine="french",
            category="main", difficulty="medium", minutes=60, ingredients=("Chicken", "Lemon"))),
        ("noodle", lib.chef, "public", dish(
            "Chicken noodle soup", tags=("meat", "quick"), cuisine="asian", category="soup",
            minutes=30, ingredients=("Chicken", "Noodles"))),
        ("cake", lib.kitchen, "public", dish(
            "Chocolate cake", tags=("dessert", "baking"), cuisine="french", category="dessert",
            difficulty="hard", minutes=90, ingredients=("Chocolate", "Flour"))),
        ("stew", lib.chef, "public", dish(
            "Vegetable stew", description="Hearty and warming; lovely next to grilled chicken.",
            tags=("vegetarian",), cuisine="french", category="main", difficulty="medium",
            minutes=45, ingredients=("Carrots", "Leeks"))),
        ("paella", lib.chef, "public", dish(
            "Seafood paella", tags=("fish",), cuisine="spanish", category="main",
            difficulty="hard", minutes=50, ingredients=("Rice", "Saffron threads", "Prawns"))),
        ("pesto", lib.chef, "private", dish(
            "Secret pesto", tags=("vegetarian", "quick"), cuisine="italian", category="sauce",
            minutes=5, ingredients=("Basil", "Pine nuts"))),
        ("pie", lib.friend, "draft", dish(
            "Unfinished chicken pie", tags=("meat", "quick"), category="soup",
            ingredients=("Chicken",))),
        ("apple", lib.friend, "public", dish(
            "apple pie", tags=("dessert", "baking"), cuisine="american", category="dessert",
            difficulty="medium", minutes=70, ingredients=("Apples", "Flour"))),
    ]
    for name, author, state, body in book:
        official = {"is_official": True} if author is lib.kitchen else {}
        lib.r[name] = (await make_recipe(api, author, state, **body, **official))["id"]
    for fan, name in ((lib.friend, "roast"), (lib.friend, "cake"), (lib.kitchen, "cake")):
        reply = await api.client.put(f"{API}/recipes/{lib.r[name]}/favorite", headers=fan)
        assert reply.status_code == 204
    return lib


PUBLIC = ("soup", "roast", "noodle", "cake", "stew", "paella", "apple")


async def test_every_filter(api: Service) -> None:
    lib = await library(api, "filters")
    anonymous: Headers = {}
    cases: list[tuple[dict[str, Any], Headers, tuple[str, ...]]] = [
        ({}, anonymous, PUBLIC),
        ({}, lib.chef, (*PUBLIC, "pesto")),
        ({}, lib.friend, (*PUBLIC, "pie")),
        ({"tags": "vegetarian,quick"}, anonymous, ("soup",)),
        ({"tags": "vegetarian,quick"}, lib.chef, ("soup", "pesto")),
        ({"tags": "QUICK, Vegetarian"}, anonymous, ("soup",)),
        ({"tags": "quick"}, anonymous, ("soup", "noodle")),
        ({"tags": "baking,dessert"}, anonymous, ("cake", "apple")),
        ({"tags": "dessert,fish"}, anonymous, ()),
        ({"tags": "nosuchtag"}, anonymous, ()),
        ({"category": "soup"}, anonymous, ("soup", "noodle")),
        ({"category": "Soup"}, lib.friend, ("soup", "noodle", "pie")),
        ({"cuisine": "French"}, anonymous, ("roast", "cake", "stew")),
        ({"difficulty": "hard"}, anonymous, ("cake", "paella")),
        ({"difficulty": "medium"}, anonymous, ("roast", "stew", "apple")),
        ({"max_total_minutes": 30}, anonymous, ("soup", "noodle")),
        ({"max_total_minutes": 17}, anonymous, ("soup",)),
        ({"max_total_minutes": 16}, anonymous, ()),
        ({"official": "true"}, anonymous, ("cake",)),
        ({"official": "false"}, anonymous, ("soup", "roast", "noodle", "stew", "paella", "apple")),
        ({"mine": "true"}, lib.chef, ("soup", "roast", "noodle", "stew", "paella", "pesto")),
        ({"mine": "true"}, lib.friend, ("pie", "apple")),
        ({"favorites": "true"}, lib.friend, ("roast", "cake")),
        ({"favorites": "true"}, lib.chef, ()),
        ({"tags": "quick", "category": "soup", "max_total_minutes": 20}, anonymous, ("soup",)),
        ({"cuisine": "french", "difficulty": "medium"}, anonymous, ("roast", "stew")),
        ({"official": "true", "tags": "quick"}, anonymous, ()),
        ({"mine": "true", "tags": "quick"}, lib.chef, ("soup", "noodle", "pesto")),
        ({"favorites": "true", "cuisine": "french", "official": "false"}, lib.friend, ("roast",)),
        ({"q": "chicken", "category": "soup"}, anonymous, ("noodle",)),
        ({"q": "chicken", "category": "soup"}, lib.friend, ("noodle", "pie")),
    ]
    for params, headers, expected in cases:
        found = await ids(api, params, headers)
        assert len(found) == len(set(found))
        assert set(found) == lib.of(*expected), (params, expected)
    for params in ({"mine": "true"}, {"favorites": "true"}):
        problem_of(await api.client.get(f"{API}/recipes", params=params), 401, "unauthorized")


async def test_every_sort(api: Service) -> None:
    lib = await library(api, "sorts")
    newest = lib.order("apple", "paella", "stew", "cake", "noodle", "roast", "soup")
    assert await ids(api) == newest
    assert await ids(api, {"sort": "newest"}) == newest
    assert await ids(api, {"sort": "relevance"}) == newest  # nothing to be relevant to
    assert await ids(api, {"sort": "title"}) == lib.order(
        "apple", "noodle", "cake", "soup", "roast", "paella", "stew")
    assert await ids(api, {"sort": "popular"}) == lib.order(
        "cake", "roast", "apple", "paella", "stew", "noodle", "soup")
    assert await ids(api, {"sort": "title", "tags": "dessert"}) == lib.order("apple", "cake")
    by_relevance = await ids(api, {"q": "chicken"})
    assert set(by_relevance) == lib.of("roast", "noodle", "stew")
    assert by_relevance[-1] == lib.r["stew"]  # a title match ranks above a description match
    assert await ids(api, {"q": "chicken", "sort": "relevance"}) == by_relevance
    assert await ids(api, {"q": "chicken", "sort": "title"}) == lib.order(
        "noodle", "roast", "stew")
    assert await ids(api, {"q": "chicken", "sort": "newest"}) == lib.order(
        "stew", "noodle", "roast")


async def test_search_finds_by_stem_typo_ingredient_and_keyword(api: Service) -> None:
    lib = await library(api, "search")
    assert await ids(api, {"q": "roasting"}) == lib.order("roast")
    assert set(await ids(api, {"q": "chiken"})) == lib.of("roast", "noodle")
    assert set(await ids(api, {"q": "CHICKEN"})) == lib.of("roast", "noodle", "stew")
    assert await ids(api, {"q": "saffron"}) == lib.order("paella")
    assert await ids(api, {"q": "prawn"}) == lib.order("paella")
    assert await ids(api, {"q": "spanish"}) == lib.order("paella")
    assert set(await ids(api, {"q": "baking"})) == lib.of("cake", "apple")
    assert await ids(api, {"q": "grilled"}) == lib.order("stew")
    assert await ids(api, {"q": "chocolat cake"}) == lib.order("cake")
    assert await ids(api, {"q": "pesto"}) == []  # private: not someone else's result
    assert await ids(api, {"q": "pesto"}, lib.chef) == lib.order("pesto")
    assert await ids(api, {"q": "unfinished"}, lib.friend) == lib.order("pie")
    assert await ids(api, {"q": "unfinished"}, lib.chef) == []
    assert await ids(api, {"q": "zzyzx quetzalcoatl"}) == []


async def test_search_in_the_recipe_language(svc: Service) -> None:
    cook = bearer(await svc.signed_up("test-recipe-search-language@example.com"))
    eintopf = (await make_recipe(svc, cook, "public", **dish(
        "Eintopf vom Land", description="Mit Möhren und Hähnchen, langsam gegart.",
        ingredients=("Gemüse",), language="de")))["id"]
    await make_recipe(svc, cook, "public", **dish("Carrot cake", ingredients=("Carrots",)))
    assert await ids(svc, {"q": "Möhre"}, language="de") == [eintopf]
    assert await ids(svc, {"q": "Möhre"}, language="de-DE,de;q=0.9,en;q=0.5") == [eintopf]
    assert await ids(svc, {"q": "Hähnchen"}, language="de") == [eintopf]
    assert await ids(svc, {"q": "Möhre"}, language="en") == []


async def test_limit_bounds(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-search-limits@example.com"))
    for n in range(3):
        await make_recipe(api, owner, "public", **dish(f"Limit stew {n}"))
    for bad in (0, -1, 101, 10_000, "ten", ""):
        reply = await api.client.get(f"{API}/recipes", params={"limit": bad})
        assert problem_of(reply, 422, "validation_failed")["errors"][0]["loc"] == [
            "query", "limit"], bad
    one = (await api.client.get(f"{API}/recipes", params={"limit": 1})).json()
    assert len(one["items"]) == 1 and one["next_cursor"]
    everything = (await api.client.get(f"{API}/recipes", params={"limit": 100})).json()
    assert len(everything["items"]) == 3 and everything["next_cursor"] is None
    exact = (await api.client.get(f"{API}/recipes", params={"limit": 3})).json()
    assert len(exact["items"]) == 3 and exact["next_cursor"] is None


async def walk(api: Service, params: dict[str, Any], headers: Headers | None = None,
               between: Any = None) -> list[str]:
    """Every id of every page, following `next_cursor` to the end; `between(page, seen)` runs
    after each page but the last."""
    seen: list[str] = []
    cursor = None
    for page in range(1, 200):
        reply = await api.client.get(f"{API}/recipes",
                                     params={**params, **({"cursor": cursor} if cursor else {})},
                                     headers=headers or {})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert len(body["items"]) <= params["limit"]
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        assert body["items"], "a cursor after an empty page"
        if between is not None:
            await between(page, list(seen))
    raise AssertionError("the pages never end")


async def test_cursors_walk_every_page_once_in_every_sort(api: Service) -> None:
    cook = bearer(await api.signed_up("test-recipe-search-walk-cook@example.com"))
    fans = [bearer(await api.signed_up(f"test-recipe-search-walk-fan{n}@example.com"))
            for n in range(2)]
    stranger = bearer(await api.signed_up("test-recipe-search-walk-stranger@example.com"))
    made = []
    for n in range(23):
        name = f"Walnut stew {n:02d}" if n % 3 else f"walnut Stew {n:02d} with walnuts"
        made.append((await make_recipe(api, cook, "public", **dish(name, minutes=n + 1)))["id"])
    for n in range(3):  # never in anyone else's pages
        await make_recipe(api, stranger, "private", **dish(f"Walnut stew secret {n}"))
        await make_recipe(api, stranger, "draft", **dish(f"Walnut stew draft {n}"))
    for fan in fans:
        for rid in made[3:9]:
            await api.client.put(f"{API}/recipes/{rid}/favorite", headers=fan)
    await api.client.put(f"{API}/recipes/{made[10]}/favorite", headers=fans[0])

    for params in ({}, {"sort": "newest"}, {"sort": "title"}, {"sort": "popular"},
                   {"q": "walnut"}, {"q": "walnut stew", "sort": "title"},
                   {"max_total_minutes": 20, "sort": "popular"}):
        whole = await ids(api, {**params, "limit": 100})
        for limit in (1, 5, 7, 23):
            walked = await walk(api, {**params, "limit": limit})
            assert walked == whole, (params, limit)
        assert len(set(whole)) == len(whole)
        if "max_total_minutes" not in params:
            assert set(whole) == set(made), params
    as_cook = await walk(api, {"limit": 4, "sort": "title"}, cook)
    assert as_cook == await ids(api, {"limit": 100, "sort": "title"}, cook)


async def test_pages_stay_stable_while_recipes_come_and_go(api: Service) -> None:
    cook = bearer(await api.signed_up("test-recipe-search-stable-cook@example.com"))
    fan = bearer(await api.signed_up("test-recipe-search-stable-fan@example.com"))
    with clock.frozen(datetime.now(UTC)):
        # All at the same instant: the newest sort falls back to the id for its order.
        made = [(await make_recipe(api, cook, "public", **dish(f"Barley stew {n:02d}")))["id"]
                for n in range(20)]
    for rid in made[:6]:
        await api.client.put(f"{API}/recipes/{rid}/favorite", headers=fan)

    for params in ({"sort": "newest"}, {"sort": "title"}, {"sort": "popular"},
                   {"q": "barley"}):
        before = await ids(api, {**params, "limit": 100})
        assert set(before) == set(made)
        archived: set[str] = set()
        changed: set[str] = set()
        added: list[str] = []
        walked_pages: list[str] = []

        async def churn(page: int, seen: list[str], before: list[str] = before,
                        params: dict[str, Any] = params, archived: set[str] = archived,
                        changed: set[str] = changed, added: list[str] = added,
                        pages: list[str] = walked_pages) -> None:
            unseen = [rid for rid in before if rid not in seen and rid not in archived]
            behind = [rid for rid in seen if rid in before and rid not in archived]
            # One recipe ahead of the cursor and one behind it leave the list.
            for rid in unseen[1:2] + behind[:1]:
                assert (await api.client.delete(f"{API}/recipes/{rid}", headers=cook)
                        ).status_code == 204
                archived.add(rid)
            if params.get("sort") == "popular" and len(unseen) > 3:
                await api.client.put(f"{API}/recipes/{unseen[3]}/favorite", headers=fan)
                changed.add(unseen[3])  # it moves: no promise where it shows up
            for title in (f"Barley stew {page:02d}a", "Barley stew 99", "Aaa barley stew"):
                added.append((await make_recipe(api, cook, "public", **dish(title)))["id"])
            pages.append(str(page))

        walked = await walk(api, {**params, "limit": 5}, between=churn)
        assert walked_pages, "the walk had several pages"
        assert len(walked) == len(set(walked)), ("a recipe came twice", params)
        unchanged = [rid for rid in before if rid not in archived and rid not in changed]
        assert [rid for rid in walked if rid in unchanged] == unchanged, params
        assert not set(walked) - set(before) - set(added) - changed
        # Put things back for the next sort: archived recipes stay archived, so make more.
        made = [rid for rid in made if rid not in archived]
        for rid in added:
            await api.client.delete(f"{API}/recipes/{rid}", headers=cook)
        while len(made) < 20:
            made.append((await make_recipe(api, cook, "public",
                                           **dish(f"Barley stew {len(made):02d}b")))["id"])


def _cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


async def test_foreign_and_forged_cursors_are_refused(api: Service) -> None:
    cook = bearer(await api.signed_up("test-recipe-search-cursors@example.com"))
    for n in range(3):
        await make_recipe(api, cook, "public", **dish(f"Cursor stew {n}"))

    async def next_cursor(params: dict[str, Any]) -> str:
        body = (await api.client.get(f"{API}/recipes", params={**params, "limit": 1})).json()
        assert body["next_cursor"], params
        cursor: str = body["next_cursor"]
        return cursor

    by_title = await next_cursor({"sort": "title"})
    by_newest = await next_cursor({})
    by_relevance = await next_cursor({"q": "stew"})
    by_popular = await next_cursor({"sort": "popular"})
    for cursor, params in ((by_title, {}), (by_title, {"sort": "newest"}),
                           (by_newest, {"sort": "title"}), (by_relevance, {}),
                           (by_relevance, {"q": "stew", "sort": "popular"}),
                           (by_popular, {"q": "stew"}), (by_newest, {"q": "stew"})):
        reply = await api.client.get(f"{API}/recipes", params={**params, "cursor": cursor})
        problem_of(reply, 400, "invalid_cursor")
    any_id = "0190f0d0-0000-7000-8000-000000000001"
    forged = [
        "!!!!", "AAAA", "////", "%%", "e30", _cursor([1, 2]), _cursor("newest"), _cursor(None),
        _cursor({"s": "newest"}), _cursor({"s": "newest", "k": "yesterday", "i": any_id}),
        _cursor({"s": "newest", "k": 5, "i": any_id}),
        _cursor({"s": "newest", "k": "2026-01-01T00:00:00+00:00", "i": "not-a-uuid"}),
        _cursor({"s": "newest", "k": "2026-01-01T00:00:00+00:00", "i": []}),
        _cursor({"s": "newest", "k": "2026-01-01T00:00:00+00:00", "i": 7}),
        _cursor({"s": ["newest"], "k": "x", "i": any_id}),
    ]
    for cursor in forged:
        reply = await api.client.get(f"{API}/recipes", params={"cursor": cursor})
        problem_of(reply, 400, "invalid_cursor")
    for sort, key in (("newest", "0001-01-01T00:00:00"), ("newest", "9999-12-31T23:59:59-14:00"),
                      ("newest", "0001-01-01T00:00:00+14:00"), ("popular", 1e300),
                      ("popular", "1e30"), ("popular", 2**31),
                      ("popular", "many"), ("relevance", "high"), ("title", "a\x00b")):
        params = {"sort": sort, "cursor": _cursor({"s": sort, "k": key, "i": any_id})}
        if sort == "relevance":
            params["q"] = "stew"
        problem_of(await api.client.get(f"{API}/recipes", params=params), 400, "invalid_cursor")
    too_long = await api.client.get(f"{API}/recipes", params={"cursor": "A" * 501})
    problem_of(too_long, 422, "validation_failed")

    # Well-formed positions anywhere in the order are fine: they just start there.
    for sort, key in (("newest", "2999-01-01T00:00:00+00:00"),
                      ("newest", "0001-01-01T00:00:00+00:00"),
                      ("newest", "2026-06-01T12:00:00+05:30"),
                      ("popular", 2**31 - 1), ("popular", -5), ("title", ""), ("title", "zzz")):
        reply = await api.client.get(f"{API}/recipes", params={
            "sort": sort, "cursor": _cursor({"s": sort, "k": key, "i": any_id})})
        assert reply.status_code == 200, (sort, key, reply.text)
    start = await api.client.get(f"{API}/recipes", params={
        "cursor": _cursor({"s": "newest", "k": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                           "i": any_id})})
    assert len(start.json()["items"]) == 3


async def test_firmware_filter_on_the_embedded_default(embedded: Service) -> None:
    """SQLite compares `requires.min_firmware` numerically too (through `version_key`)."""
    from epicura.recipes import search
    from tests.recipes.test_recipe_api import make_recipe

    cook = bearer(await embedded.signed_up("test-firmware-embedded@example.com"))
    me = (await embedded.client.get(f"{API}/users/me", headers=cook)).json()["id"]
    made = {version: (await make_recipe(embedded, cook, title=f"Needs {version}",
                                        requires={"min_firmware": version}))["id"]
            for version in ("1.4.2", "1.3.10", "1.10.0", "2.0.0")}
    f = search.Filters(profile="epicura-1/rev-a", firmware="1.4.2", mine=True, limit=100)
    async with embedded.runtime.db.sessions() as session:
        items, _cursor = await search.page(session, f, uuid.UUID(me))
    assert {str(item["id"]) for item in items} == {made["1.4.2"], made["1.3.10"]}
