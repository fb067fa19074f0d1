"""Assembly of the versioned API routers.

Every module router's routes are copied, with the `/api/v1` prefix, into one flat router instead of
being `include_router`'ed under a prefixed router: FastAPI matches included routers level by level,
twice per level, and that nesting cost about 0.2 ms per request. A router whose shape the copy
does not cover (nested routers, its own lifespan, other route types) is still included as is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from fastapi import APIRouter
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import BaseRoute, Match, Mount, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from epicura.admin.audit_router import router as admin_audit_router
from epicura.admin.jobs_router import router as admin_jobs_router
from epicura.admin.router import router as admin_router
from epicura.analytics.router import router as analytics_router
from epicura.appliances.admin_router import router as appliances_admin_router
from epicura.appliances.device_router import router as device_router
from epicura.appliances.router import router as appliances_router
from epicura.appliances.sync_router import router as device_sync_router
from epicura.auth.router import auth_router, oauth_router, users_router
from epicura.bridge.device_ingest_router import router as device_ingest_router
from epicura.kit.errors import ProblemError, render
from epicura.notifications.router import inbox_router, push_router
from epicura.ota.admin_router import router as ota_admin_router
from epicura.ota.device_router import router as ota_device_router
from epicura.realtime.gateway import router as realtime_router
from epicura.recipes.hot_routes import hot_routes as recipe_hot_routes
from epicura.recipes.images_router import router as images_router
from epicura.recipes.router import router as recipes_router
from epicura.recipes.scaling_router import router as scaling_router
from epicura.sessions.router import router as sessions_router
from epicura.telemetry.router import router as telemetry_router

API_PREFIX = "/api/v1"

# Every module's router, in matching order: add new ones here.
MODULE_ROUTERS = (
    auth_router,
    oauth_router,
    users_router,
    recipes_router,
    scaling_router,
    images_router,
    telemetry_router,
    sessions_router,
    device_ingest_router,
    device_sync_router,
    admin_router,
    admin_jobs_router,
    admin_audit_router,
    analytics_router,
    push_router,
    inbox_router,
    appliances_router,
    device_router,
    appliances_admin_router,
    ota_admin_router,
    ota_device_router,
    realtime_router,
)

# Routes consulted before all others. Each one only claims requests it can answer from memory
# (see recipes/hot_routes.py) and declines everything else, so its place changes no other route.
HotRoutes = Callable[[str], Sequence[BaseRoute]]
HOT_ROUTES: tuple[HotRoutes, ...] = (recipe_hot_routes,)


def v1_router() -> APIRouter:
    router = APIRouter()
    for hot in HOT_ROUTES:
        router.routes.extend(hot(API_PREFIX))
    for module_router in MODULE_ROUTERS:
        if _flattenable(module_router):
            for route in module_router.routes:
                _copy_route(router, route, API_PREFIX)
        else:
            router.include_router(module_router, prefix=API_PREFIX)
    return router


def _flattenable(router: APIRouter) -> bool:
    """Routes only of the kinds `_copy_route` reproduces exactly, and no router-level lifespan
    (which `include_router` would have merged into the app's)."""
    return (
        all(type(route) in (APIRoute, APIWebSocketRoute) or isinstance(route, Mount)
            for route in router.routes)
        and not router.on_startup
        and not router.on_shutdown
        and type(router.lifespan_context).__name__ == "_DefaultLifespan"
        and not getattr(router, "_low_priority_routes", ())
    )


def _copy_route(router: APIRouter, route: BaseRoute, prefix: str) -> None:
    """The route under `prefix`, as `include_router(prefix=...)` would have served it. A module
    router's routes already carry its own prefix, dependencies, tags and responses."""
    if isinstance(route, APIRoute):
        router.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=list(route.tags),
            dependencies=list(route.dependencies),
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=dict(route.responses),
            deprecated=route.deprecated,
            methods=set(route.methods or ()),
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            strict_content_type=route.strict_content_type,
            max_body_size=route.max_body_size,
            form_limits=route.form_limits or None,
        )
    elif isinstance(route, APIWebSocketRoute):
        router.add_api_websocket_route(
            prefix + route.path, route.endpoint, name=route.name,
            dependencies=list(route.dependencies),
        )
    else:
        assert isinstance(route, Mount)
        mounted = copy.copy(route)  # what include_router does with a mount
        mounted.path = (prefix + route.path).rstrip("/")
        mounted.path_regex, mounted.path_format, mounted.param_convertors = compile_path(
            mounted.path + "/{path:path}"
        )
        router.routes.append(mounted)


class HotRoutesFirst:
    """ASGI middleware (innermost) that offers each request to the hot routes before FastAPI's
    router sees it. They are also the router's first routes, so the answer is the same either
    way; asking them here skips the router's matching, which costs FastAPI 0.165 about 30 µs a
    request even when the first route matches — a quarter of a cached anonymous read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.hot: list[BaseRoute] | None = None

    def _hot_routes(self, scope: Scope) -> list[BaseRoute]:
        if self.hot is None:
            hot_types = {type(route) for make in HOT_ROUTES for route in make(API_PREFIX)}
            self.hot = [route for route in _all_routes(scope["app"].routes)
                        if type(route) in hot_types]
        return self.hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            for route in self._hot_routes(scope):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    try:
                        await route.handle(scope, receive, send)
                    except ProblemError as exc:  # as the app's handler would render it
                        await render(exc)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _all_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    return [context.original_route for context in iter_route_contexts(routes)]
