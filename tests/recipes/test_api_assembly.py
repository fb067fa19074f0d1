"""The flat /api/v1 router serves the same routes as including each module router under a
prefixed router would: the same OpenAPI document, and the same routes in the same order."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount

from epicura import api
from epicura.recipes.hot_routes import HotReads


def _app(router: APIRouter) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    return app


def _routes(app: FastAPI) -> list[tuple[Any, ...]]:
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, HotReads) or not (context.path_format or "").startswith(
                api.API_PREFIX):
            continue  # the hot route is checked below; the app's own docs routes differ
        found.append((context.path_format, sorted(context.methods or ()), context.name,
                      getattr(route, "endpoint", None),
                      [d.dependency for d in getattr(context, "dependencies", [])],
                      getattr(context, "status_code", None)))
    return found


def test_flat_routes_equal_included_routers() -> None:
    reference = APIRouter(prefix=api.API_PREFIX)
    for module_router in api.MODULE_ROUTERS:
        reference.include_router(module_router)
    nested, flat = _app(reference), _app(api.v1_router())

    assert _routes(flat) == _routes(nested)
    assert (get_openapi(title="t", version="1", routes=flat.routes)
            == get_openapi(title="t", version="1", routes=nested.routes))
    # Flat indeed: every module route is a route of the one router, none an included router.
    assert all(isinstance(route, (APIRoute, APIWebSocketRoute, Mount))
               for route in api.v1_router().routes)


def test_hot_routes_come_first() -> None:
    assert isinstance(api.v1_router().routes[0], HotReads)
