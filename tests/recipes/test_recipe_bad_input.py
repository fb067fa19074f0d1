"""Bad input to the recipes API (issue 3, "Bad input"; T19/T20 for recipes).

Every refusal is a problem-details reply with a stable code and, for validation, an `errors[]`
entry whose `loc` names the offending place; nothing is ever half-written (the row counts of
`recipes` and `recipe_versions` do not move); and nothing is a 500. Each case runs on PostgreSQL
and on the embedded default, which must behave the same.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from epicura.recipes.models import Recipe, RecipeVersion
from tests.recipes.test_recipe_flow import soup
from tests.support import API, Service, bearer

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024
PROBLEM = "application/problem+json"




async def row_counts(svc: Service) -> tuple[int, int]:
    async with svc.runtime.db.sessions() as session:
        recipes = await session.scalar(select(func.count()).select_from(Recipe))
        versions = await session.scalar(select(func.count()).select_from(RecipeVersion))
    return int(recipes or 0), int(versions or 0)


def problem_of(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = reply.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["title"]
    return body


def locs(problem: dict[str, Any]) -> list[list[Any]]:
    return [error["loc"] for error in problem["errors"]]


def with_step(step: dict[str, Any], index: int = 2) -> dict[str, Any]:
    body = soup()
    body["steps"][index] = step
    return body


def _mutate(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = copy.deepcopy(soup())
    change(body)
    return body


HEAT = {"title": "Cook", "action": "heat"}
# (case, request body, the loc of the error, its type): every one a 422 `validation_failed`.
BAD_CONTENT: list[tuple[str, dict[str, Any], list[Any], str]] = [
    ("temperature as text",
     with_step({**HEAT, "params": {"temperature_c": "hot", "duration_s": 60}}),
     ["body", "steps", 2, "heat", "params", "temperature_c"], "float_parsing"),
    ("duration as a fraction",
     with_step({**HEAT, "params": {"temperature_c": 90, "duration_s": 1.5}}),
     ["body", "steps", 2, "heat", "params", "duration_s"], "int_from_float"),
    ("duration as a list",
     with_step({**HEAT, "params": {"temperature_c": 90, "duration_s": [60]}}),
     ["body", "steps", 2, "heat", "params", "duration_s"], "int_type"),
    ("negative speed",
     with_step({"title": "Stir", "action": "stir", "params": {"speed": -1, "duration_s": 60}}),
     ["body", "steps", 2, "stir", "params", "speed"], "greater_than_equal"),
    ("temperature beyond any appliance",
     with_step({**HEAT, "params": {"temperature_c": 10_000, "duration_s": 60}}),
     ["body", "steps", 2, "heat", "params", "temperature_c"], "less_than_equal"),
    ("a week-long step",
     with_step({"title": "Rest", "action": "rest", "params": {"duration_s": 10**9}}),
     ["body", "steps", 2, "rest", "params", "duration_s"], "less_than_equal"),
    ("unknown direction",
     with_step({"title": "Stir", "action": "stir",
                "params": {"speed": 2, "duration_s": 60, "direction": "sideways"}}),
     ["body", "steps", 2, "stir", "params", "direction"], "literal_error"),
    ("a param the action does not take",
     with_step({**HEAT, "params": {"temperature_c": 90, "duration_s": 60, "power_w": 900}}),
     ["body", "steps", 2, "heat", "params", "power_w"], "extra_forbidden"),
    ("params missing",
     with_step({**HEAT}), ["body", "steps", 2, "heat", "params"], "missing"),
    ("unknown action", with_step({"title": "Fry", "action": "deep_fry", "params": {}}),
     ["body", "steps", 2], "union_tag_invalid"),
    ("no action", with_step({"title": "Fry", "params": {}}),
     ["body", "steps", 2], "union_tag_not_found"),
    ("ingredient key that is not a key",
     _mutate(lambda b: b["ingredients"][0].update(key="Red Onion!")),
     ["body", "ingredients", 0, "key"], "string_pattern_mismatch"),
    ("negative quantity", _mutate(lambda b: b["ingredients"][1].update(quantity=-5)),
     ["body", "ingredients", 1, "quantity"], "greater_than"),
    ("unknown unit", _mutate(lambda b: b["ingredients"][1].update(unit="bucket")),
     ["body", "ingredients", 1, "unit"], "literal_error"),
    ("10,000 steps",
     _mutate(lambda b: b.update(steps=[{"title": f"S{i}", "action": "manual"}
                                       for i in range(10_000)])),
     ["body", "steps"], "too_long"),
    ("negative servings", _mutate(lambda b: b.update(servings=-4)),
     ["body", "servings"], "greater_than_equal"),
    ("no servings", _mutate(lambda b: b.update(servings=0)),
     ["body", "servings"], "greater_than_equal"),
    ("a stadium of servings", _mutate(lambda b: b.update(servings=100_000)),
     ["body", "servings"], "less_than_equal"),
    ("servings beyond 64 bits", _mutate(lambda b: b.update(servings=10**40)),
     ["body", "servings"], "less_than_equal"),
    ("fractional servings", _mutate(lambda b: b.update(servings=2.5)),
     ["body", "servings"], "int_from_float"),
    ("servings as a word", _mutate(lambda b: b.update(servings="four")),
     ["body", "servings"], "int_parsing"),
    ("a title of almost 1 MiB", _mutate(lambda b: b.update(title="T" * (MiB - 4096))),
     ["body", "title"], "string_too_long"),
    ("an empty title", _mutate(lambda b: b.update(title="   ")),
     ["body", "title"], "string_too_short"),
    ("NUL in the title", _mutate(lambda b: b.update(title="Soup\x00; DROP TABLE recipes")),
     ["body", "title"], "value_error"),
    ("NUL in an ingredient name", _mutate(lambda b: b["ingredients"][0].update(name="On\x00ion")),
     ["body", "ingredients", 0, "name"], "value_error"),
    ("NUL in a tag", _mutate(lambda b: b.update(tags=["vegan\x00"])),
     ["body", "tags"], "value_error"),
    ("NUL in a prompt",
     with_step({"title": "Add", "action": "await_user", "params": {"prompt": "A\x00dd"}}),
     ["body", "steps", 2, "await_user", "params", "prompt"], "value_error"),
    ("a version number of our own", _mutate(lambda b: b.update(current_version=7)),
     ["body", "current_version"], "extra_forbidden"),
    ("an owner of our choosing",
     _mutate(lambda b: b.update(owner_id="00000000-0000-0000-0000-000000000001")),
     ["body", "owner_id"], "extra_forbidden"),
    ("a status of our choosing", _mutate(lambda b: b.update(status="published")),
     ["body", "status"], "extra_forbidden"),
    ("an unknown profile name format",
     _mutate(lambda b: b.update(requires={"profiles": ["epicura 1; DROP"]})),
     ["body", "requires", "profiles", 0], "string_pattern_mismatch"),
]


@pytest.mark.parametrize(("case", "body", "loc", "kind"), BAD_CONTENT,
                         ids=[case for case, *_ in BAD_CONTENT])
async def test_bad_content_is_refused_with_its_place_and_nothing_is_written(
        api: Service, case: str, body: dict[str, Any], loc: list[Any], kind: str) -> None:
    slug = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    owner = bearer(await api.signed_up(f"test-recipe-bad-input-{slug}@example.com"))
    existing = await api.client.post(f"{API}/recipes", json=soup(), headers=owner)
    assert existing.status_code == 201
    rid, etag = existing.json()["id"], existing.headers["etag"]
    counts = await row_counts(api)

    created = await api.client.post(f"{API}/recipes", json=body, headers=owner)
    problem = problem_of(created, 422, "validation_failed")
    assert loc in locs(problem), problem
    assert [e["type"] for e in problem["errors"] if e["loc"] == loc] == [kind]

    updated = await api.client.put(f"{API}/recipes/{rid}", json=body,
                                   headers={**owner, "If-Match": etag})
    assert locs(problem_of(updated, 422, "validation_failed")) == locs(problem)

    assert await row_counts(api) == counts
    current = await api.client.get(f"{API}/recipes/{rid}", headers=owner)
    assert (current.json()["current_version"], current.headers["etag"]) == (1, etag)


async def test_steps_naming_missing_ingredients_are_refused(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-bad-input-keys@example.com"))
    counts = await row_counts(api)
    body = soup()
    body["steps"][3]["ingredient_keys"] = ["tomato", "cream"]
    problem = problem_of(await api.client.post(f"{API}/recipes", json=body, headers=owner),
                         422, "validation_failed")
    [error] = problem["errors"]
    assert error["loc"][0] == "body"
    assert "step 3" in error["msg"] and "cream" in error["msg"]

    twice = soup()
    twice["ingredients"].append({"key": "onion", "name": "Red onion"})
    problem = problem_of(await api.client.post(f"{API}/recipes", json=twice, headers=owner),
                         422, "validation_failed")
    assert "unique" in problem["errors"][0]["msg"]
    assert await row_counts(api) == counts


RAW_BODIES: list[tuple[str, bytes, list[Any]]] = [
    ("NaN temperature",
     b'{"title": "x", "steps": [{"title": "a", "action": "heat",'
     b' "params": {"temperature_c": NaN, "duration_s": 60}}]}',
     ["body", "steps", 0, "heat", "params", "temperature_c"]),
    ("Infinity speed",
     b'{"title": "x", "steps": [{"title": "a", "action": "blend",'
     b' "params": {"speed": Infinity, "duration_s": 60}}]}',
     ["body", "steps", 0, "blend", "params", "speed"]),
    ("-Infinity weight",
     b'{"title": "x", "steps": [{"title": "a", "action": "weigh",'
     b' "params": {"target_weight_g": -Infinity}}]}',
     ["body", "steps", 0, "weigh", "params", "target_weight_g"]),
    ("NaN quantity",
     b'{"title": "x", "ingredients": [{"key": "a", "name": "A", "quantity": NaN}]}',
     ["body", "ingredients", 0, "quantity"]),
    ("NaN servings", b'{"title": "x", "servings": NaN}', ["body", "servings"]),
    ("servings overflowing a double", b'{"title": "x", "servings": 1e400}', ["body", "servings"]),
    ("NaN calories", b'{"title": "x", "nutrition": {"kcal": NaN}}',
     ["body", "nutrition", "kcal"]),
    ("Infinity calories", b'{"title": "x", "nutrition": {"kcal": Infinity}}',
     ["body", "nutrition", "kcal"]),
    ("a lone surrogate", b'{"title": "a\\ud800b"}', ["body", "title"]),
]


@pytest.mark.parametrize(("case", "raw", "loc"), RAW_BODIES, ids=[c for c, *_ in RAW_BODIES])
async def test_non_finite_numbers_are_refused(api: Service, case: str, raw: bytes,
                                              loc: list[Any]) -> None:
    owner = bearer(await api.signed_up("test-recipe-bad-input-nan@example.com"))
    counts = await row_counts(api)
    reply = await api.client.post(f"{API}/recipes", content=raw,
                                  headers={**owner, "Content-Type": "application/json"})
    assert loc in locs(problem_of(reply, 422, "validation_failed")), case
    assert await row_counts(api) == counts


async def test_oversized_and_malformed_bodies(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-bad-input-size@example.com"))
    counts = await row_counts(api)
    json_headers = {**owner, "Content-Type": "application/json"}

    mib_title = json.dumps({**soup(), "title": "T" * MiB}).encode()
    problem_of(await api.client.post(f"{API}/recipes", content=mib_title, headers=json_headers),
               413, "body_too_large")

    async def trickle() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"title": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    problem_of(await api.client.post(f"{API}/recipes", content=trickle(), headers=json_headers),
               413, "body_too_large")
    problem_of(await api.client.post(f"{API}/recipes", content=b'{"title": "Soup",',
                                     headers=json_headers), 400, "malformed_body")
    problem_of(await api.client.post(f"{API}/recipes", content=b"title=Soup",
                                     headers={**owner, "Content-Type": "text/plain"}),
               415, "unsupported_media_type")
    problem_of(await api.client.post(f"{API}/recipes", json=[soup()], headers=owner),
               422, "validation_failed")
    problem_of(await api.client.post(f"{API}/recipes", json=soup()), 401, "unauthorized")
    assert await row_counts(api) == counts


QUERIES = [
    "' OR 1=1--", "'; DROP TABLE recipes; --", '"unterminated', "a & | ! :*", "NEAR(",
    "tomato:*", "!tomato", "(tomato | soup) & !basil", "\\", "%", "_", "*", "'", '""', "--",
    "soup\x00 OR 1=1", "\x00", "Crème brûlée", "томатный суп", "🍅 soup", "a" * 200,
    " ".join(["soup"] * 60)[:200], "<script>alert(1)</script>",
]


async def test_search_syntax_in_q_is_only_ever_words(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-bad-input-q@example.com"))
    created = await api.client.post(f"{API}/recipes", json={**soup(), "visibility": "public"},
                                    headers=owner)
    rid = created.json()["id"]
    assert (await api.client.post(f"{API}/recipes/{rid}/publish", headers=owner)).status_code == 200
    counts = await row_counts(api)

    for q in QUERIES:
        for caller in ({}, owner):
            for sort in (None, "relevance", "title"):
                params = {"q": q, "limit": 5, **({"sort": sort} if sort else {})}
                reply = await api.client.get(f"{API}/recipes", params=params, headers=caller)
                assert reply.status_code == 200, (q, reply.text)
                assert set(reply.json()) == {"items", "next_cursor"}
    # Injection is not a match-all: neither query has a word of the recipe in it.
    for q in ("' OR 1=1--", '"unterminated'):
        assert (await api.client.get(f"{API}/recipes", params={"q": q})).json()["items"] == []
    # ...while the operators around real words leave those words.
    for q in ("tomato:*", "!tomato", "(tomato | soup) & !basil", "soup\x00"):
        found = await api.client.get(f"{API}/recipes", params={"q": q})
        assert [item["id"] for item in found.json()["items"]] == [rid], q

    too_long = await api.client.get(f"{API}/recipes", params={"q": "a" * 201})
    assert locs(problem_of(too_long, 422, "validation_failed")) == [["query", "q"]]
    assert await row_counts(api) == counts
    still = await api.client.get(f"{API}/recipes", params={"q": "tomato"})
    assert [item["id"] for item in still.json()["items"]] == [rid]


async def test_nul_and_junk_in_list_filters(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-bad-input-filters@example.com"))
    for params in ({"tags": "vegan\x00"}, {"category": "soup\x00"}, {"cuisine": "\x00"},
                   {"tags": ",,, ,"}, {"tags": "' OR 1=1--"}, {"cuisine": "' OR 1=1--"}):
        for caller in ({}, owner):
            reply = await api.client.get(f"{API}/recipes", params=params, headers=caller)
            assert reply.status_code == 200, (params, reply.text)
    junk: tuple[tuple[dict[str, Any], list[str]], ...] = (
        ({"difficulty": "extreme"}, ["query", "difficulty"]),
        ({"max_total_minutes": -1}, ["query", "max_total_minutes"]),
        ({"max_total_minutes": 10**12}, ["query", "max_total_minutes"]),
        ({"official": "maybe"}, ["query", "official"]),
        ({"sort": "random"}, ["query", "sort"]),
        ({"tags": "x" * 401}, ["query", "tags"]),
    )
    for bad, loc in junk:
        reply = await api.client.get(f"{API}/recipes", params=bad)
        assert locs(problem_of(reply, 422, "validation_failed")) == [loc]


async def test_bad_ids_and_version_numbers(api: Service) -> None:
    owner = bearer(await api.signed_up("test-recipe-bad-input-ids@example.com"))
    rid = (await api.client.post(f"{API}/recipes", json=soup(), headers=owner)).json()["id"]
    counts = await row_counts(api)
    for path in ("/recipes/not-a-uuid", "/recipes/1 OR 1=1", f"/recipes/{rid}/versions/one",
                 f"/recipes/{rid}/versions/1/diff?against=x",
                 f"/recipes/{rid}/versions/1/diff?against=0",
                 f"/recipes/{rid}/versions/1/diff"):
        problem_of(await api.client.get(f"{API}{path}", headers=owner), 422, "validation_failed")
    for path in (f"/recipes/{rid}/versions/2", f"/recipes/{rid}/versions/0",
                 f"/recipes/{rid}/versions/-1", f"/recipes/{rid}/versions/99999999999",
                 f"/recipes/{rid}/versions/1/diff?against=99999999999"):
        reply = await api.client.get(f"{API}{path}", headers=owner)
        assert reply.status_code in (404, 422), (path, reply.text)
        problem_of(reply, reply.status_code, "not_found" if reply.status_code == 404
                   else "validation_failed")
    restore = await api.client.post(f"{API}/recipes/{rid}/versions/5/restore", headers=owner)
    problem_of(restore, 404, "not_found")
    assert await row_counts(api) == counts
