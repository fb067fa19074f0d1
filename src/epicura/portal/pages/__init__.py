"""The portal's pages, one router per section."""

from __future__ import annotations

from fastapi import APIRouter

from epicura.portal.pages import dashboard

ROUTERS: tuple[APIRouter, ...] = (dashboard.router,)
