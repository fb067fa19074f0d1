"""`/admin/appliances*`: the fleet (admin role only; 403 for others)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from epicura.appliances import importer, paging, service
from epicura.appliances.repository import FleetFilter
from epicura.appliances.schemas import (
    FIRMWARE_PATTERN,
    PLAIN_TEXT,
    PROFILE_PART_PATTERN,
    AdminApplianceDetail,
    AdminApplianceOut,
    ImportResult,
    ImportRow,
)
from epicura.auth.access import CurrentAdmin, NotAuthenticated, current_admin
from epicura.kit.errors import Forbidden, UnsupportedMediaType, responses
from epicura.kit.pagination import InvalidCursor, Page
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep

router = APIRouter(prefix="/admin/appliances", tags=["admin"],
                   dependencies=[Depends(current_admin)])
ADMIN_ERRORS = (NotAuthenticated, Forbidden)
CSV_EXAMPLE = ("serial,model,hw_revision,factory_secret\n"
               "EPC1-000123,epicura-1,rev-a,4mQ9v2xT8kLp3rZs7wYc\n")
IMPORT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "array", "minItems": 1,
                                        "maxItems": importer.MAX_ROWS,
                                        "items": ImportRow.model_json_schema()}},
        "text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE},
    },
}


@router.post("/import", response_model=ImportResult,
             responses=responses(*ADMIN_ERRORS, UnsupportedMediaType),
             openapi_extra={"requestBody": IMPORT_BODY})
async def import_appliances(request: Request, admin: CurrentAdmin, session: DbSession,
                            ip: ClientIp) -> ImportResult:
    """Import factory rows `serial, model, hw_revision, factory_secret` as a JSON array or CSV
    (`text/csv` with a header row). Each row is reported: `created`, `skipped` (the serial is
    already imported: nothing about it changes) or `invalid` with the reason. Factory secrets
    are 16-256 characters and only their SHA-256 is kept."""
    rows = importer.parse_rows(request.headers.get("content-type", ""), await request.body())
    return await importer.import_rows(session, admin, rows, ip)


@router.get("", response_model=Page[AdminApplianceOut],
            responses=responses(*ADMIN_ERRORS, InvalidCursor))
async def list_appliances(
    session: DbSession,
    q: Annotated[str | None, Query(max_length=100, pattern=PLAIN_TEXT,
                                   description="Part of the serial, name or model")] = None,
    online: bool | None = None,
    firmware: Annotated[str | None, Query(max_length=40, pattern=FIRMWARE_PATTERN)] = None,
    channel: Literal["stable", "beta", "dev"] | None = None,
    hw_revision: Annotated[str | None, Query(max_length=40,
                                             pattern=PROFILE_PART_PATTERN)] = None,
    lifecycle: Literal["imported", "provisioned", "decommissioned"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[AdminApplianceOut]:
    """The fleet, newest import first."""
    where = FleetFilter(q=q, online=online, firmware=firmware, channel=channel,
                        hw_revision=hw_revision, lifecycle=lifecycle)
    rows = await service.search_fleet(session, where, paging.after(cursor), limit + 1)
    return Page[AdminApplianceOut](
        items=[service.admin_view(row) for row in rows[:limit]],
        next_cursor=paging.next_cursor(rows, limit, lambda a: (a.created_at, a.id)))


@router.get("/{appliance_id}", response_model=AdminApplianceDetail,
            responses=responses(*ADMIN_ERRORS, service.ApplianceNotFound))
async def get_appliance(appliance_id: uuid.UUID, session: DbSession) -> AdminApplianceDetail:
    return service.admin_detail(await service.admin_get(session, appliance_id))


@router.post("/{appliance_id}/decommission", response_model=AdminApplianceDetail,
             responses=responses(*ADMIN_ERRORS, service.ApplianceNotFound))
async def decommission(appliance_id: uuid.UUID, admin: CurrentAdmin, rt: RuntimeDep,
                       session: DbSession, ip: ClientIp) -> AdminApplianceDetail:
    """Retire an appliance: unpaired, its device secret and tokens ended, its broker
    credentials removed; it cannot provision or be claimed again. Nothing is sent to it."""
    appliance = await service.decommission(rt, session, admin, appliance_id, ip)
    return service.admin_detail(appliance)
