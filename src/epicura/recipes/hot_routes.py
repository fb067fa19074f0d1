"""The anonymous hot reads, answered in front of FastAPI's routing and dependency solving.

Anonymous `GET /recipes/{id}` and `GET /recipes` are most of the read traffic. Through a regular
route each costs about 0.3 ms of Python before the handler runs (route matching, dependency
solving, validating thirteen query parameters); from the caches the answer itself takes a few µs.

`HotReads` is consulted before every other route (`api.HOT_ROUTES`). It claims a request in
`matches` only when it can answer exactly as the regular route in router.py would, through the
same functions in hot.py:
- `GET /recipes/{id}` without an `Authorization` header and with the id in canonical form;
- `GET /recipes` without an `Authorization` header when the page is cached (pages are cached only
  after the regular route validated their query) or the query is empty or just `limit=N`.
Anything else (a signed-in caller, another query, another method, a malformed id) is declined and
reaches the regular routes unchanged; they validate and answer as before.

It is a `Mount` because FastAPI's `include_router` keeps a mount's class (it copies it) where it
rebuilds plain routes. The mount's own path matching is not used.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Receive, Scope, Send

from epicura.kit.runtime import Runtime
from epicura.recipes import hot, search
from epicura.recipes.cache import caches

CLAIM = "epicura.hot_read"
_CANONICAL_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_PLAIN_LIMIT = re.compile(rb"limit=(100|[1-9][0-9]?)")
# Starlette's `request.url.query` drops a fragment and these bytes; such queries go the long way.
_QUERY_SURPRISES = (b"#", b"\t", b"\r", b"\n")
_WANTED = (b"if-none-match", b"accept-language")
_JSON_HEADERS = ((b"content-type", b"application/json"),)


def hot_routes(prefix: str) -> list[BaseRoute]:
    return [HotReads(prefix + "/recipes")]


async def _never_called(_scope: Scope, _receive: Receive, _send: Send) -> None:
    raise AssertionError("HotReads answers in handle()")


class HotReads(Mount):
    def __init__(self, list_path: str) -> None:
        super().__init__(list_path, app=_never_called)
        self.list_path = list_path
        self.id_prefix = list_path + "/"
        self._metric_routes: dict[str, BaseRoute | None] = {}
        self.served: Counter[str] = Counter()  # by kind: "id", "page" (cached), "list"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET":
            return Match.NONE, {}
        if CLAIM in scope:  # FastAPI asks every route twice per request (router, then branch)
            return Match.FULL, {}
        path = get_route_path(scope)
        claim: tuple[Any, ...] | None = None
        if path == self.list_path:
            claim = _list_claim(scope)
        elif path.startswith(self.id_prefix):
            claim = _id_claim(scope, path[len(self.id_prefix):])
        if claim is None:
            return Match.NONE, {}
        scope[CLAIM] = claim
        return Match.FULL, {CLAIM: claim}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt: Runtime = scope["app"].state.runtime
        kind, *details = scope[CLAIM]
        scope["route"] = self._metric_route(scope, kind)  # metrics and logs name the route
        self.served[kind] += 1
        if kind == "id":
            recipe_id, if_none_match = details
            status, headers, body = await hot.anonymous_read(rt, recipe_id, if_none_match)
        else:
            status, headers = 200, {"cache-control": hot.LIST_CACHE}
            if kind == "page":
                body = details[0]
            else:
                page_key, filters = details
                body = await hot.anonymous_page(rt, page_key, filters)
        await _send(send, status, headers, body)

    def _metric_route(self, scope: Scope, kind: str) -> BaseRoute | None:
        """The regular route this request would otherwise have taken."""
        template = self.list_path if kind != "id" else self.id_prefix + "{recipe_id}"
        if template not in self._metric_routes:
            self._metric_routes[template] = next(
                (context.original_route for context in iter_route_contexts(scope["app"].routes)
                 if isinstance(context.original_route, APIRoute)
                 and context.path_format == template and "GET" in (context.methods or ())),
                None,
            )
        return self._metric_routes[template]


def _anonymous_headers(scope: Scope) -> dict[bytes, str] | None:
    """The first value of each header these reads look at; None when the caller may be signed
    in (any `Authorization` header: the regular route decides what it means)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name == b"authorization":
            return None
        if name in _WANTED and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _id_claim(scope: Scope, raw_id: str) -> tuple[Any, ...] | None:
    if not _CANONICAL_ID.fullmatch(raw_id):
        return None
    headers = _anonymous_headers(scope)
    if headers is None:
        return None
    return "id", uuid.UUID(raw_id), headers.get(b"if-none-match")


def _list_claim(scope: Scope) -> tuple[Any, ...] | None:
    headers = _anonymous_headers(scope)
    raw_query: bytes = scope.get("query_string", b"")
    if headers is None or any(byte in raw_query for byte in _QUERY_SURPRISES):
        return None
    try:
        query = raw_query.decode()
    except UnicodeDecodeError:
        return None
    language = hot.language_of(headers.get(b"accept-language"))
    page_key = hot.page_key(language, query)
    cached = caches(scope["app"].state.runtime).pages.get(page_key)
    if cached is not None:
        return "page", cached
    plain = _PLAIN_LIMIT.fullmatch(raw_query)
    if raw_query and plain is None:
        return None
    limit = int(plain.group(1)) if plain else 20
    return "list", page_key, search.Filters(language=language, limit=limit)


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    """The reply as the regular route's `Response` writes it (no length or type on a 304)."""
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    if status != 304:
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
        raw.extend(_JSON_HEADERS)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
