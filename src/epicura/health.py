"""Liveness, readiness and metrics: the probes an orchestrator and Prometheus call."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from epicura.kit import metrics
from epicura.kit.runtime import Runtime, get_runtime

router = APIRouter(tags=["health"])
PROBE_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


async def _check_db(rt: Runtime) -> None:
    async with rt.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(rt: Runtime) -> None:
    await rt.redis.ping()


async def _probe(check: Any, rt: Runtime) -> str:
    try:
        await asyncio.wait_for(check(rt), timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # readiness reports any failure as "down"
        return f"down: {type(exc).__name__}"
    return "ok"


@router.get("/readyz", responses={503: {"description": "A dependency is down"}})
async def readyz(request: Request) -> JSONResponse:
    """200 when the configured dependencies answer; 503 naming the one that failed."""
    rt = get_runtime(request)
    checks: dict[str, Any] = {"database": _check_db}
    if rt.settings.redis_url is not None:
        checks["redis"] = _check_redis
    extra_checks = rt.extras.get("readiness_checks", {})
    checks.update(extra_checks)
    names = list(checks)
    results = await asyncio.gather(*(_probe(checks[name], rt) for name in names))
    report = dict(zip(names, results, strict=True))
    ready = all(result == "ok" for result in results)
    headers = None if ready else {"Retry-After": "5"}
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": report},
        status_code=200 if ready else 503,
        headers=headers,
    )


@router.get("/metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    """Prometheus text exposition of this process's metrics."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
