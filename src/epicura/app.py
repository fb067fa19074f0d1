"""The application factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware

from epicura import api, health, storage_router
from epicura.appliances import library
from epicura.appliances import service as appliances_service
from epicura.auth import service as auth_service
from epicura.bridge import readiness as broker_readiness
from epicura.bridge.publisher import close_publisher
from epicura.config import Settings
from epicura.kit import jobs, readpool, schedule, storage
from epicura.kit.errors import PROBLEM_MEDIA_TYPE, install_handlers
from epicura.kit.http import EdgeMiddleware
from epicura.kit.idempotency import IdempotencyMiddleware
from epicura.kit.runtime import Runtime
from epicura.migrate import upgrade_to_head
from epicura.notifications import providers as push_providers
from epicura.notifications import service as notifications_service
from epicura.portal import web as portal_web
from epicura.realtime import hub as realtime_hub
from epicura.realtime import outbox
from epicura.recipes import images
from epicura.sessions import service as sessions_service

log = structlog.get_logger("epicura.app")
SHUTDOWN_TASKS_TIMEOUT_S = 5.0

# Responses that carry fresh secrets are never stored for replay.
IDEMPOTENCY_EXCLUDED = ("/api/v1/auth/", "/api/v1/device/provision", "/api/v1/device/token",
                        "/api/v1/device/claim-codes",
                        "/api/v1/admin/firmware")  # a firmware upload streams: never buffered


def job_context(rt: Runtime) -> jobs.JobContext:
    import epicura.auth.tasks  # noqa: F401 - registers the module's job handlers
    from epicura.appliances import tasks as _appliance_tasks  # noqa: F401 - command expiry
    from epicura.bridge import broker_tasks as _broker_tasks  # noqa: F401 - credential jobs
    from epicura.bridge import presence as _presence  # noqa: F401 - inactivity sweep
    from epicura.bridge import publisher as _publisher  # noqa: F401 - the mqtt.publish job
    from epicura.notifications import tasks as _notifications  # noqa: F401 - push, token pruning
    from epicura.ota import tasks as _ota_tasks  # noqa: F401 - rollout evaluation
    from epicura.sessions import tasks as _session_tasks  # noqa: F401 - the stale sweep
    from epicura.telemetry import tasks as _telemetry  # noqa: F401 - its periodic tasks

    library.install(rt)  # registers its fan-out job; job sessions know the runtime
    return jobs.JobContext(db=rt.db, sealer=rt.sealer, extras={"runtime": rt})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    rt: Runtime = app.state.runtime
    if settings.embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_to_head(settings)
    broker_readiness.install(rt)  # /readyz asks the MQTT broker when MQTT_BROKER_URL is set
    storage.install(rt)  # local files, or S3 when S3_BUCKET is set (+ its readiness check)
    images.install(rt)  # rt.extras["recipe_image_url"] for list summaries
    appliances_service.install(rt)  # rt.extras["appliance_profile"] for recipe fit
    library.install(rt)  # sessions carry the runtime: recipe changes nudge appliances
    notifications_service.install(rt)  # an erased account's push tokens and inbox go with it
    sessions_service.install(rt)  # an erased account's session notes go with it
    background: list[asyncio.Task[Any]] = []
    try:
        await auth_service.revocations(rt).rebuild()
    except Exception:
        log.warning("revocation_rebuild_failed_at_start", exc_info=True)
    hub = realtime_hub.install(rt)  # the WebSocket gateway's live events and sweep
    background.append(asyncio.create_task(hub.run()))
    background.append(asyncio.create_task(rt.bus.run()))
    background.append(asyncio.create_task(outbox.relay(rt).run()))
    if not settings.is_sqlite:
        rt.extras["read_pool"] = await readpool.create(settings.sqlalchemy_url,
                                                       settings.database_pool_size)
    if settings.embedded or app.state.run_jobs:
        background.append(asyncio.create_task(jobs.run_forever(job_context(rt), rt.jobs.wakeup)))
        background.append(asyncio.create_task(schedule.run_forever(job_context(rt))))
    log.info("started", env=settings.epicura_env, embedded=settings.embedded)
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        # Bounded: a task that swallows its cancellation (a known Python 3.11 wait_for race in
        # libraries underneath) must not hold the process's shutdown hostage.
        _done, stuck = await asyncio.wait(background, timeout=SHUTDOWN_TASKS_TIMEOUT_S)
        for task in stuck:
            log.warning("background_task_did_not_stop", task=task.get_name())
            task.cancel()
        if "read_pool" in rt.extras:
            await rt.extras.pop("read_pool").close()
        await close_publisher(rt)
        await push_providers.close(rt)  # the FCM and APNs connections
        await rt.close()


BODY_ERRORS = (
    ("400", "The request body is not valid JSON (`malformed_body`)"),
    ("413", "The request body is too large (`body_too_large`)"),
    ("415", "Unsupported media type (`unsupported_media_type`)"),
)


def _problem_openapi(app: FastAPI) -> dict[str, Any]:
    """Error responses are `application/problem+json`: say so in the schema."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.isdigit() and int(status) >= 400 and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
            if "requestBody" in operation:
                # Any route with a body can refuse it before the handler runs.
                for status, description in BODY_ERRORS:
                    operation["responses"].setdefault(
                        status, {"description": description, "content": problem}
                    )
    app.openapi_schema = schema
    return schema


def create_app(settings: Settings | None = None, *, run_jobs: bool = False) -> FastAPI:
    """Build the app. `run_jobs` runs the job runner inside this process (the embedded default
    always does)."""
    settings = settings or Settings()
    runtime = Runtime.build(settings)
    app = FastAPI(
        title="Epicura Cloud",
        version="1.0.0",
        description="REST API of Epicura Cloud: accounts, recipes, appliances, cooking sessions.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.run_jobs = run_jobs
    install_handlers(app)
    app.include_router(health.router)
    app.include_router(api.v1_router())
    app.include_router(storage_router.router)  # GET /files/{key}: signed local files
    app.mount(portal_web.PREFIX, portal_web.build(runtime))  # the admin portal's pages
    app.openapi = lambda: _problem_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(api.HotRoutesFirst)  # innermost: anonymous cached reads skip routing
    app.add_middleware(
        IdempotencyMiddleware, redis=runtime.redis, keys=runtime.keys,
        excluded_prefixes=IDEMPOTENCY_EXCLUDED,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
            allow_methods=["*"], allow_headers=["*"],
            expose_headers=["ETag", "X-Request-ID", "Retry-After"],
        )
    app.add_middleware(
        EdgeMiddleware, max_json_bytes=settings.max_json_body_bytes,
        max_upload_bytes=settings.max_upload_body_bytes, hsts=settings.is_production,
        large_uploads={path: settings.max_firmware_bytes + 1024 * 1024
                       for path in ("/api/v1/admin/firmware", "/admin/firmware")},
    )
    return app
