"""Anonymous reads answered in front of the regular routes (recipes/hot_routes.py) reply exactly
as the regular routes do, and every request they must not answer (a signed-in caller, another
method or query, a malformed id) reaches the regular routes.

The regular route's answer to an anonymous caller is obtained by sending a non-Bearer
`Authorization` header: the hot route declines any such header, and the regular route treats a
caller without a Bearer token as anonymous.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from epicura.config import Settings
from epicura.kit import metrics
from epicura.recipes.hot_routes import HotReads
from tests.recipes.test_recipe_api import make_recipe
from tests.support import API, Mailbox, Service, bearer, running

pytestmark = pytest.mark.anyio
REGULAR = {"Authorization": "Basic dGVzdDp0ZXN0"}


def hot_reads(svc: Service) -> HotReads:
    found = [context.original_route for context in iter_route_contexts(svc.app.routes)
             if isinstance(context.original_route, HotReads)]
    assert len(found) == 1
    return found[0]


def _served(svc: Service) -> dict[str, int]:
    return dict(hot_reads(svc).served)


async def same_reply(svc: Service, url: str, headers: dict[str, str] | None = None,
                     params: dict[str, Any] | None = None) -> Any:
    """GET anonymously twice, through the hot route and the regular route: identical replies."""
    hot = await svc.client.get(url, headers=headers or {}, params=params)
    regular = await svc.client.get(url, headers={**(headers or {}), **REGULAR}, params=params)
    assert hot.status_code == regular.status_code, (url, hot.text, regular.text)
    assert hot.content == regular.content, url

    def kept(reply: Any) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in reply.headers.items() if k != "x-request-id")

    assert kept(hot) == kept(regular), url
    return hot


async def test_anonymous_recipe_reads_match_the_regular_route(api: Service) -> None:
    owner = bearer(await api.signed_up("test-hot-reads-owner@example.com"))
    public = (await make_recipe(api, owner, "public", title="Hot soup"))["id"]
    private = (await make_recipe(api, owner, "private", title="Private soup"))["id"]
    draft = (await make_recipe(api, owner, "draft", title="Draft soup"))["id"]
    before = _served(api)

    read = await same_reply(api, f"{API}/recipes/{public}")
    assert read.status_code == 200 and read.json()["id"] == public
    assert read.headers["cache-control"] == "public, max-age=60"
    assert (await same_reply(api, f"{API}/recipes/{public.upper()}")).json()["id"] == public
    for tag in (read.headers["etag"], f"W/{read.headers['etag']}", "*"):
        assert (await same_reply(api, f"{API}/recipes/{public}",
                                 {"If-None-Match": tag})).status_code == 304
    for hidden in (private, draft, str(uuid.uuid4())):
        assert (await same_reply(api, f"{API}/recipes/{hidden}")).status_code == 404
    served = _served(api)
    assert served.get("id", 0) - before.get("id", 0) == 2 + 3 + 3

    # Not for the hot route: these reach the regular routes and answer as before.
    assert (await api.client.get(f"{API}/recipes/{private}", headers=owner)).status_code == 200
    assert (await api.client.get(f"{API}/recipes/not-an-id")).status_code == 422
    assert (await api.client.get(f"{API}/recipes/{public.replace('-', '')}")).status_code == 200
    assert (await api.client.head(f"{API}/recipes/{public}")).status_code == 405
    assert _served(api) == served


async def test_anonymous_list_pages_match_the_regular_route(api: Service) -> None:
    owner = bearer(await api.signed_up("test-hot-reads-lister@example.com"))
    for n in range(3):
        await make_recipe(api, owner, "public", title=f"Hot list soup {n}")
    await make_recipe(api, owner, "private", title="Hot list secret soup")
    before = _served(api)

    first = await same_reply(api, f"{API}/recipes", params={"limit": 2})
    assert len(first.json()["items"]) == 2 and first.json()["next_cursor"]
    assert first.headers["cache-control"] == "public, max-age=15"
    again = await same_reply(api, f"{API}/recipes", params={"limit": 2})  # now from the cache
    assert again.content == first.content
    await same_reply(api, f"{API}/recipes", params={"limit": 2},
                     headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    served = _served(api)
    assert served.get("list", 0) - before.get("list", 0) == 2  # en, fr
    assert served.get("page", 0) - before.get("page", 0) >= 1

    # Any other query is validated by the regular route first; the page it caches is then
    # served by the hot route.
    searched = await api.client.get(f"{API}/recipes", params={"q": "secret", "limit": 5})
    assert searched.json()["items"] == []
    assert _served(api).get("page", 0) == served.get("page", 0)
    assert (await same_reply(api, f"{API}/recipes", params={"q": "secret", "limit": 5})
            ).json()["items"] == []
    for params in ({"limit": 0}, {"limit": 101}, {"sort": "nope"}):
        assert (await api.client.get(f"{API}/recipes", params=params)).status_code == 422, params
    assert (await api.client.get(f"{API}/recipes", params={"mine": "true"})).status_code == 401
    mine = await api.client.get(f"{API}/recipes", params={"limit": 10}, headers=owner)
    assert "Hot list secret soup" in [item["title"] for item in mine.json()["items"]]
    assert mine.headers["cache-control"] == "private, no-cache"


async def test_hot_reads_count_under_the_regular_route_in_metrics(api: Service) -> None:
    owner = bearer(await api.signed_up("test-hot-reads-metrics@example.com"))
    rid = (await make_recipe(api, owner, "public"))["id"]
    counter = metrics.http_requests.labels("GET", "/api/v1/recipes/{recipe_id}", "200")
    before = counter._value.get()
    served = _served(api).get("id", 0)
    assert (await api.client.get(f"{API}/recipes/{rid}")).status_code == 200
    assert _served(api)["id"] == served + 1
    assert counter._value.get() == before + 1


@pytest.fixture
async def uncached(pg_settings: Settings, smtp: tuple[int, Mailbox]) -> AsyncIterator[Service]:
    """The service with its recipe caches off: every hot read goes to PostgreSQL."""
    settings = pg_settings.model_copy(update={"recipe_cache_enabled": False})
    async with running(settings, smtp[1]) as service:
        yield service


async def test_hot_reads_without_caches(svc: Service, uncached: Service) -> None:
    owner = bearer(await svc.signed_up("test-hot-reads-uncached@example.com"))
    rid = (await make_recipe(svc, owner, "public", title="Uncached soup"))["id"]
    await make_recipe(svc, owner, "private", title="Uncached secret")
    read = await same_reply(uncached, f"{API}/recipes/{rid}")
    assert read.json()["content"]["title"] == "Uncached soup"
    listed = await same_reply(uncached, f"{API}/recipes", params={"limit": 20})
    assert [item["title"] for item in listed.json()["items"]] == ["Uncached soup"]
    await same_reply(uncached, f"{API}/recipes", params={"limit": 20})
    assert _served(uncached) == {"id": 1, "list": 2}
