"""A recipe's life through the API: write, publish (and be refused), edit, diff, restore, find."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import API, Service, bearer

pytestmark = pytest.mark.anyio


def soup(title: str = "Creamy tomato soup", temperature: float = 100) -> dict[str, Any]:
    return {
        "title": title,
        "description": "A smooth soup of roasted tomatoes and basil.",
        "servings": 4,
        "difficulty": "easy",
        "cuisine": "italian",
        "category": "soup",
        "tags": ["vegetarian", "quick"],
        "ingredients": [
            {"key": "onion", "name": "Onion", "quantity": 1, "unit": "piece"},
            {"key": "tomato", "name": "Tomatoes", "quantity": 800, "unit": "g"},
            {"key": "basil", "name": "Basil", "quantity": None, "unit": None},
        ],
        "steps": [
            {"title": "Chop", "action": "blend", "params": {"speed": 5, "duration_s": 5},
             "ingredient_keys": ["onion"]},
            {"title": "Add tomatoes", "action": "await_user",
             "params": {"prompt": "Add the tomatoes"}, "ingredient_keys": ["tomato"]},
            {"title": "Cook", "action": "heat",
             "params": {"temperature_c": temperature, "duration_s": 900, "speed": 1}},
            {"title": "Blend", "action": "blend", "params": {"speed": 10, "duration_s": 60}},
        ],
    }


async def _story(svc: Service, email: str) -> None:
    owner = bearer(await svc.signed_up(email))
    created = await svc.client.post(f"{API}/recipes", json=soup(temperature=200), headers=owner)
    assert created.status_code == 201, created.text
    recipe = created.json()
    rid = recipe["id"]
    assert (recipe["status"], recipe["visibility"], recipe["current_version"]) == (
        "draft", "private", 1)
    assert recipe["content"]["total_minutes"] == 17

    refused = await svc.client.post(f"{API}/recipes/{rid}/publish", headers=owner)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "step_out_of_range"
    [violation] = problem["errors"]
    assert (violation["step"], violation["field"], violation["value"], violation["limit"]) == (
        2, "temperature_c", 200, 180)

    no_etag = await svc.client.put(f"{API}/recipes/{rid}", json=soup(), headers=owner)
    assert no_etag.status_code == 428
    stale = await svc.client.put(f"{API}/recipes/{rid}", json=soup(),
                                 headers={**owner, "If-Match": '"stale"'})
    assert stale.status_code == 412
    fixed = await svc.client.put(f"{API}/recipes/{rid}", json={**soup(), "visibility": "public"},
                                 headers={**owner, "If-Match": created.headers["etag"]})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["current_version"] == 2

    published = await svc.client.post(f"{API}/recipes/{rid}/publish", headers=owner)
    assert published.status_code == 200 and published.json()["status"] == "published"

    diff = await svc.client.get(f"{API}/recipes/{rid}/versions/2/diff?against=1", headers=owner)
    assert diff.json()["changes"] == [{"path": "steps[2].params.temperature_c", "before": 200.0,
                                       "after": 100.0, "change": "changed"}]
    restored = await svc.client.post(f"{API}/recipes/{rid}/versions/1/restore", headers=owner)
    assert restored.status_code == 422  # version 1 would no longer fit the profile
    versions = await svc.client.get(f"{API}/recipes/{rid}/versions", headers=owner)
    assert [v["version"] for v in versions.json()] == [2, 1]

    anonymous = await svc.client.get(f"{API}/recipes/{rid}")
    assert anonymous.status_code == 200
    again = await svc.client.get(f"{API}/recipes/{rid}",
                                 headers={"If-None-Match": anonymous.headers["etag"]})
    assert again.status_code == 304

    found = await svc.client.get(f"{API}/recipes", params={"q": "tomatoe sopu"})
    assert [item["id"] for item in found.json()["items"]] == [rid]
    stemmed = await svc.client.get(f"{API}/recipes", params={"q": "roasting"})
    assert [item["id"] for item in stemmed.json()["items"]] == [rid]
    tags = await svc.client.get(f"{API}/recipes/tags")
    assert {"tag": "vegetarian", "count": 1} in tags.json()


async def test_recipe_story_on_postgres(svc: Service) -> None:
    await _story(svc, "recipe-story-pg@example.com")


async def test_recipe_story_on_the_embedded_default(embedded: Service) -> None:
    await _story(embedded, "recipe-story-embedded@example.com")


async def test_private_recipes_are_hidden_from_others(svc: Service) -> None:
    owner = bearer(await svc.signed_up("recipe-owner@example.com"))
    other = bearer(await svc.signed_up("recipe-other@example.com"))
    rid = (await svc.client.post(f"{API}/recipes", json=soup(), headers=owner)).json()["id"]
    assert (await svc.client.get(f"{API}/recipes/{rid}", headers=other)).status_code == 404
    assert (await svc.client.get(f"{API}/recipes/{rid}")).status_code == 404
    listed = await svc.client.get(f"{API}/recipes", headers=other)
    assert listed.json()["items"] == []
    mine = await svc.client.get(f"{API}/recipes", params={"mine": "true"}, headers=owner)
    assert [item["id"] for item in mine.json()["items"]] == [rid]


async def test_owner_cannot_set_protected_fields(svc: Service) -> None:
    owner = bearer(await svc.signed_up("recipe-sneaky@example.com"))
    for extra in ({"owner_id": "00000000-0000-0000-0000-000000000000"}, {"status": "published"}):
        reply = await svc.client.post(f"{API}/recipes", json={**soup(), **extra}, headers=owner)
        assert reply.status_code == 422, extra
    official = await svc.client.post(f"{API}/recipes", json={**soup(), "is_official": True},
                                     headers=owner)
    assert official.status_code == 403
