"""The hand-written PostgreSQL listing (`search_pg`, JSON rendered by PostgreSQL, read pool) gives
exactly the pages of the SQLAlchemy reference (`search.build_query` + `render.summaries_body`):
for anonymous, owning and other callers, every filter, every sort, and every cursor step, with
the values' JSON types and the timestamps' text compared too. First pages in each index order
are read from the partial indexes of migration 0003 without sorting rows. (Which scans a search
picks depends on the table's size and statistics: see the EXPLAIN notes in search_pg.py.)"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from epicura.recipes import hot, render, search, search_pg
from tests.recipes.test_recipe_search import Library, library
from tests.support import API, Service

pytestmark = pytest.mark.anyio

FILTERS: list[dict[str, Any]] = [
    {},
    {"q": "chicken"},
    {"q": "chiken sopu"},  # typo tolerance only: trigram word similarity
    {"q": "soupe", "language": "fr"},
    {"q": "\"or\" -- ; DROP"},
    {"tags": ("quick",)},
    {"tags": ("meat", "quick")},
    {"tags": ("a\x00",)},
    {"category": "soup"},
    {"cuisine": "FRENCH"},
    {"difficulty": "hard"},
    {"max_total_minutes": 45},
    {"official": True},
    {"official": False},
    {"profile": "epicura-1/rev-a"},
    {"profile": "epicura-1/rev-a", "firmware": "1.4.2"},
    {"mine": True},
    {"favorites": True},
]
SORTS: tuple[search.Sort | None, ...] = (None, "newest", "popular", "title", "relevance")


def typed(value: Any) -> Any:
    """The document with each leaf's JSON type: 4 and 4.0 differ, as key order does."""
    if isinstance(value, dict):
        return [(key, typed(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [typed(item) for item in value]
    return type(value).__name__, value


async def reference(svc: Service, f: search.Filters, viewer: uuid.UUID | None) -> bytes:
    async with svc.runtime.db.sessions() as session:
        items, cursor = await search.page(session, f, viewer)
    return render.summaries_body(items, cursor, render.image_url_of(svc.runtime))


async def user_id(svc: Service, headers: dict[str, str]) -> uuid.UUID:
    me = await svc.client.get(f"{API}/users/me", headers=headers)
    return uuid.UUID(me.json()["id"])


async def dressed_library(svc: Service) -> Library:
    """The search tests' recipes, with the values whose rendering differs most between
    PostgreSQL and orjson: whole and fractional ratings, a timestamp on a whole second, a cover."""
    lib = await library(svc, "sql")
    async with svc.runtime.db.transaction() as session:
        for name, change in (
            ("soup", "rating_avg = 4, updated_at = date_trunc('second', updated_at), "
                     "min_firmware = '1.10.0'"),
            ("roast", "rating_avg = 4.25, cover_image_id = gen_random_uuid(), "
                      "min_firmware = '1.2.0'"),
            ("cake", "rating_avg = 1.0 / 3, cooked_count = 2"),
        ):
            await session.execute(text(f"UPDATE recipes SET {change} WHERE id = :id"),  # noqa: S608
                                  {"id": uuid.UUID(lib.r[name])})
    return lib


async def test_hand_written_pages_equal_the_reference(svc: Service) -> None:
    assert "read_pool" in svc.runtime.extras
    lib = await dressed_library(svc)
    viewers = [None, await user_id(svc, lib.chef), await user_id(svc, lib.friend)]
    compared = 0
    for viewer in viewers:
        for extra in FILTERS:
            if (extra.get("mine") or extra.get("favorites")) and viewer is None:
                continue  # refused with 401 before any query
            for sort in SORTS:
                f = search.Filters(**extra, sort=sort, limit=2)
                for _page in range(10):
                    expected = await reference(svc, f, viewer)
                    actual = await hot.page_body(svc.runtime, f, viewer)
                    context = (viewer, extra, sort, f.cursor)
                    assert typed(orjson.loads(actual)) == typed(orjson.loads(expected)), context
                    compared += 1
                    cursor = orjson.loads(expected)["next_cursor"]
                    if cursor is None:
                        break
                    f = search.Filters(**extra, sort=sort, limit=2, cursor=cursor)
                else:
                    pytest.fail(f"more pages than recipes: {context}")
    assert compared > 300
    # The dressed values took part.
    everything = orjson.loads(await hot.page_body(svc.runtime, search.Filters(limit=100), None))
    by_id = {item["id"]: item for item in everything["items"]}
    assert by_id[lib.r["soup"]]["rating_avg"] == 4.0
    assert "." not in by_id[lib.r["soup"]]["updated_at"]  # a whole second: no fraction
    assert by_id[lib.r["roast"]]["image_url"]


async def test_bad_cursors_are_refused_the_same_way(svc: Service) -> None:
    from epicura.kit.pagination import InvalidCursor, encode_cursor

    for sort, key in (("newest", "yesterday"), ("popular", 2**40), ("title", "a\x00"),
                      ("relevance", "x")):
        cursor = encode_cursor({"s": sort, "k": key, "i": str(uuid.uuid4())})
        f = search.Filters(q="soup", sort=sort, cursor=cursor)  # type: ignore[arg-type]
        with pytest.raises(InvalidCursor):
            await hot.page_body(svc.runtime, f, None)
        with pytest.raises(InvalidCursor):
            await reference(svc, f, None)


async def _plan(svc: Service, f: search.Filters, viewer: uuid.UUID | None) -> str:
    sql, args, _sort = search_pg.listing_sql(f, viewer)
    async with svc.runtime.db.transaction() as session:
        # Planner choices on a handful of rows are not those on thousands: take scans away so the
        # plan shows which indexes the statement can use at all.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        rows = await driver.fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(row[0] for row in rows)


async def test_first_pages_read_the_partial_indexes_in_order(svc: Service) -> None:
    lib = await library(svc, "plans")
    chef = await user_id(svc, lib.chef)
    for sort, index in (("newest", "ix_recipes_public_newest"),
                        ("popular", "ix_recipes_public_popular"),
                        ("title", "ix_recipes_public_title")):
        f = search.Filters(sort=sort)  # type: ignore[arg-type]
        anonymous = await _plan(svc, f, None)
        # In index order: no sort of the rows at all.
        assert f"Index Scan using {index}" in anonymous and "Sort" not in anonymous, anonymous
        signed_in = await _plan(svc, f, chef)
        assert f"Index Scan using {index}" in signed_in, signed_in
        assert "ix_recipes_owner_unlisted" in signed_in, signed_in


@pytest.mark.parametrize("firmware", ["1.4.2", "1.4.2-beta.1"])
async def test_firmware_filter_compares_versions_as_numbers(svc: Service, firmware: str) -> None:
    """Cookable on an appliance with firmware 1.4.2: the soup needs 1.10.0 (newer, though it
    sorts first as text) and is left out; the roast needs 1.2.0 and stays. Both listings agree."""
    lib = await dressed_library(svc)
    chef = await user_id(svc, lib.chef)
    f = search.Filters(profile="epicura-1/rev-a", firmware=firmware, mine=True, limit=100)
    listed = {item["id"] for item in orjson.loads(await reference(svc, f, chef))["items"]}
    assert lib.r["roast"] in listed and lib.r["soup"] not in listed
    fast = {item["id"] for item in orjson.loads(await hot.page_body(svc.runtime, f, chef))["items"]}
    assert fast == listed
