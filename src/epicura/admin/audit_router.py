"""`GET /admin/audit`: the audit log, filtered."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from epicura.admin import audit_repository
from epicura.auth.access import NotAuthenticated, current_admin
from epicura.auth.router import json_only
from epicura.kit.errors import ErrorItem, Forbidden, ValidationFailed, responses
from epicura.kit.pagination import InvalidCursor, Page, decode_time_id, encode_time_id
from epicura.kit.runtime import DbSession

SANE_YEARS = (1970, 9000)  # and nothing that overflows when moved to UTC
router = APIRouter(prefix="/admin/audit", tags=["admin"],
                   dependencies=[Depends(current_admin), Depends(json_only)])


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    action: str
    actor_id: uuid.UUID | None
    actor_type: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    request_id: str | None
    details: dict[str, Any]


async def audit_page(session: Any, *, actor: uuid.UUID | None, action: str | None,
                     start: datetime | None, end: datetime | None, cursor: str | None,
                     limit: int) -> Page[AuditEventOut]:
    for moment in (start, end):
        if moment is not None and not SANE_YEARS[0] <= moment.year <= SANE_YEARS[1]:
            raise ValidationFailed(errors=[ErrorItem(loc=["query", "from"], type="value_error",
                                                     msg="from and to lie between 1970 and 9000")])
    rows = await audit_repository.listing(session, actor=actor, action=action, start=start,
                                          end=end, after=decode_time_id(cursor),
                                          limit=limit + 1)
    last = rows[limit - 1] if len(rows) > limit else None
    return Page[AuditEventOut](
        items=[AuditEventOut.model_validate(row) for row in rows[:limit]],
        next_cursor=None if last is None else encode_time_id(last.at, last.id))


@router.get("", response_model=Page[AuditEventOut],
            responses=responses(NotAuthenticated, Forbidden, InvalidCursor, ValidationFailed))
async def list_audit(
    session: DbSession,
    actor: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9_.]+$")] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[AuditEventOut]:
    """Audit events newest first; `action` is an exact action (`admin.user.disabled`) or, ending
    in a dot, a family (`auth.`); [from, to) bounds the time."""
    return await audit_page(session, actor=actor, action=action, start=from_, end=to,
                            cursor=cursor, limit=limit)
