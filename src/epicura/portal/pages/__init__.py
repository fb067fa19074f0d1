"""The portal's pages, one router per section."""

from __future__ import annotations

from fastapi import APIRouter

from epicura.portal.pages import appliances, dashboard, firmware, operations, recipes, users

ROUTERS: tuple[APIRouter, ...] = (dashboard.router, users.router, appliances.router,
                                  recipes.router, firmware.router,
                                  operations.router)
