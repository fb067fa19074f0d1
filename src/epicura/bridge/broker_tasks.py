"""Broker credential jobs: the appliances module enqueues them in its own transaction (outbox),
so the broker is changed only for provisioning that committed, and retried while it is away.

    broker_tasks.enqueue_upsert(rt, session, device_id, device_secret)   # provision, re-provision
    broker_tasks.enqueue_remove(rt, session, device_id)                  # decommission

The secret travels sealed in the job (kit/jobs.py) and is gone once the job is done. Without
MQTT_BROKER_URL (the embedded default: appliances use HTTPS) the jobs do nothing.

Order matters and retries could upset it: a provisioning job that failed while the broker was
down must not re-create the credentials of an appliance decommissioned since, nor put back a
secret rotated since. So each job carries a ticket (enqueue order) and only the newest pending
job of an appliance acts: it retires older ones still waiting and waits for one another worker
is running; an older job finding a newer one pending does nothing.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.bridge.broker_admin import BrokerAdmin, BrokerEndpoint
from epicura.kit import clock, jobs
from epicura.kit.runtime import Runtime

log = structlog.get_logger("epicura.broker_tasks")

UPSERT_JOB = "broker.appliance.upsert"
REMOVE_JOB = "broker.appliance.remove"
KINDS = (UPSERT_JOB, REMOVE_JOB)
PENDING = (jobs.QUEUED, jobs.FAILED, jobs.RUNNING)


class OlderJobRunning(Exception):
    """An older credential job of the same appliance is running elsewhere: retry after it."""


def enqueue_upsert(rt: Runtime, session: AsyncSession, device_id: uuid.UUID | str,
                   password: str) -> None:
    """Create the appliance's broker client, or rotate its secret (ends its MQTT session)."""
    _enqueue(rt, session, UPSERT_JOB, device_id, {"password": password})


def enqueue_remove(rt: Runtime, session: AsyncSession, device_id: uuid.UUID | str) -> None:
    """Delete the appliance's broker client and role (ends its MQTT session)."""
    _enqueue(rt, session, REMOVE_JOB, device_id, None)


def _enqueue(rt: Runtime, session: AsyncSession, kind: str, device_id: uuid.UUID | str,
             secret: dict[str, Any] | None) -> None:
    # Fixed width, so tickets sort as strings in enqueue order; the suffix makes each unique.
    ticket = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
    rt.jobs.enqueue(session, kind, {"device_id": str(device_id), "ticket": ticket},
                    secrets=secret)


def _endpoint(ctx: jobs.JobContext) -> BrokerEndpoint | None:
    rt: Runtime = ctx.extras["runtime"]
    url = rt.settings.mqtt_broker_url
    return BrokerEndpoint.from_url(url) if url else None


@jobs.handler(UPSERT_JOB)
async def upsert_appliance(ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    endpoint = _endpoint(ctx)
    if endpoint is None or not await _newest(ctx, payload):
        return
    async with BrokerAdmin(endpoint) as admin:
        await admin.upsert_appliance(payload["device_id"], payload["password"])


@jobs.handler(REMOVE_JOB)
async def remove_appliance(ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    endpoint = _endpoint(ctx)
    if endpoint is None or not await _newest(ctx, payload):
        return
    async with BrokerAdmin(endpoint) as admin:
        await admin.remove_appliance(payload["device_id"])


async def _newest(ctx: jobs.JobContext, payload: dict[str, Any]) -> bool:
    """Whether this job is the one to act for its appliance (see the module's docstring)."""
    device_id, mine = payload["device_id"], payload.get("ticket") or ""
    now = clock.utcnow()
    async with ctx.db.transaction() as session:
        ticket = jobs.Job.payload["ticket"].as_string().label("ticket")
        rows = (await session.execute(
            select(jobs.Job.id, jobs.Job.state, jobs.Job.locked_until, ticket).where(
                jobs.Job.kind.in_(KINDS), jobs.Job.state.in_(PENDING),
                jobs.Job.payload["device_id"].as_string() == device_id,
            )
        )).all()
        if any((row.ticket or "") > mine for row in rows):
            log.info("broker_job_superseded", device_id=device_id)
            return False
        older = [row for row in rows if (row.ticket or "") < mine]
        if any(_held(row.state, row.locked_until, now) for row in older):
            raise OlderJobRunning(f"an older broker job for {device_id} is running")
        if older:
            await _retire(session, [row.id for row in older], now)
    return True


def _held(state: str, locked_until: datetime | None, now: datetime) -> bool:
    return bool(state == jobs.RUNNING and locked_until is not None and locked_until >= now)


async def _retire(session: AsyncSession, ids: list[uuid.UUID], now: datetime) -> None:
    """Mark older jobs done (their sealed secret dropped) unless a worker claimed one since."""
    result = await session.execute(
        update(jobs.Job)
        .where(jobs.Job.id.in_(ids),
               jobs.Job.state.in_((jobs.QUEUED, jobs.FAILED)) | (jobs.Job.locked_until < now))
        .values(state=jobs.SUCCEEDED, payload={}, finished_at=now, locked_until=None,
                last_error="superseded by a newer broker job for this appliance")
    )
    if getattr(result, "rowcount", len(ids)) != len(ids):
        raise OlderJobRunning("an older broker job was claimed meanwhile")
