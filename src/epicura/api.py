"""Assembly of the versioned API routers."""

from __future__ import annotations

from fastapi import APIRouter

from epicura.admin.router import router as admin_router
from epicura.appliances.admin_router import router as appliances_admin_router
from epicura.appliances.device_router import router as device_router
from epicura.appliances.router import router as appliances_router
from epicura.appliances.sync_router import router as device_sync_router
from epicura.auth.router import auth_router, oauth_router, users_router
from epicura.bridge.device_ingest_router import router as device_ingest_router
from epicura.recipes.images_router import router as images_router
from epicura.recipes.router import router as recipes_router
from epicura.recipes.scaling_router import router as scaling_router
from epicura.telemetry.router import router as telemetry_router

API_PREFIX = "/api/v1"


def v1_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    for module_router in (auth_router, oauth_router, users_router, recipes_router, scaling_router,
                          images_router, telemetry_router, device_ingest_router, device_sync_router,
                          admin_router,
                          appliances_router,
                          device_router,
                          appliances_admin_router):
        router.include_router(module_router)
    return router
