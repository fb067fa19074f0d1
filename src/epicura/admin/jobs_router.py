"""`/admin/jobs`: background jobs by state, and putting a failed or dead one back in the queue."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from epicura.auth.access import CurrentAdmin, NotAuthenticated, current_admin
from epicura.auth.router import json_only
from epicura.kit import audit, jobs
from epicura.kit.errors import Conflict, Forbidden, NotFound, responses
from epicura.kit.pagination import InvalidCursor, Page, decode_time_id, encode_time_id
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep, after_commit

router = APIRouter(prefix="/admin/jobs", tags=["admin"],
                   dependencies=[Depends(current_admin), Depends(json_only)])
ADMIN_ERRORS = (NotAuthenticated, Forbidden)
State = Literal["queued", "running", "succeeded", "failed", "dead"]


class JobOut(BaseModel):
    """A job without its payload (it may hold sealed secrets and personal data)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    state: str
    attempts: int
    max_attempts: int
    run_at: datetime
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class JobNotRetryable(Conflict):
    code = "job_not_retryable"
    title = "Only a failed or dead job can be retried"


@router.get("", response_model=Page[JobOut], responses=responses(*ADMIN_ERRORS, InvalidCursor))
async def list_jobs(
    session: DbSession,
    state: State | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[JobOut]:
    """Jobs newest first; `state=failed` (waiting for a retry) or `state=dead` (out of
    attempts, or failed for good) are the ones to look at."""
    rows = await jobs.listing(session, state=state, after=decode_time_id(cursor),
                              limit=limit + 1)
    last = rows[limit - 1] if len(rows) > limit else None
    return Page[JobOut](items=[JobOut.model_validate(row) for row in rows[:limit]],
                        next_cursor=None if last is None else encode_time_id(last.created_at,
                                                                             last.id))


@router.post("/{job_id}/retry", response_model=JobOut,
             responses=responses(*ADMIN_ERRORS, NotFound, JobNotRetryable))
async def retry_job(job_id: uuid.UUID, admin: CurrentAdmin, rt: RuntimeDep, session: DbSession,
                    ip: ClientIp) -> JobOut:
    """Queue a failed or dead job again now, with a fresh set of attempts (409 otherwise)."""
    if await jobs.get(session, job_id) is None:
        raise NotFound()
    if not await jobs.retry(session, job_id):
        raise JobNotRetryable()
    audit.record(session, "admin.job_retry", actor_id=admin.id, target_type="job",
                 target_id=job_id, ip=ip)

    async def wake() -> None:
        rt.jobs.wakeup.set()

    after_commit(session, wake)
    found = await session.get(jobs.Job, job_id, populate_existing=True)
    assert found is not None
    return JobOut.model_validate(found)
