"""The HTTPS fallback of the MQTT up/ topics: `POST /device/telemetry`, `POST /device/events`.

Same payloads, same validation and the same ingest pipeline as the bridge, so a message sent
over MQTT and retried over HTTPS (or the reverse) is stored once. The request's transaction is
the batch's; live events are published after its commit.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances.access import CurrentDevice, DeviceNotAuthenticated
from epicura.bridge import ingest, metrics
from epicura.bridge.payloads import KINDS, DeviceMessage, Rejected, check_raw, validate
from epicura.kit import clock
from epicura.kit.errors import BodyTooLarge, ErrorItem, ProblemError, RateLimited, responses
from epicura.kit.runtime import DbSession, Runtime, RuntimeDep, after_commit

router = APIRouter(prefix="/device", tags=["device"])

MAX_EVENTS = 100
DEVICE_LIMIT = "600/minute"


class InvalidDeviceMessage(ProblemError):
    status = 422
    code = "invalid_device_message"
    title = "The message does not follow the device message format"


class TelemetryAccepted(BaseModel):
    id: uuid.UUID
    duplicate: bool
    samples_stored: int
    samples_refused: int


class EventResult(BaseModel):
    index: int
    id: uuid.UUID | None
    status: Literal["stored", "duplicate", "rejected"]
    code: str | None = None


class EventsAccepted(BaseModel):
    results: list[EventResult]


TELEMETRY_DOC = (
    "The body of an MQTT `up/telemetry` message: `{v: 1, id, ts, seq, boot_id, session_id?, "
    "samples: [{t, bowl_temp_c, target_temp_c, speed, direction, weight_g, heater_w, "
    "motor_rpm, lid, …}]}` (1 to 300 samples, at most 256 KiB).")
EVENTS_DOC = (
    "`{events: [{topic, …body}]}`: up to 100 messages, each the body of an MQTT up/ message "
    "plus `topic`, the up/ topic it stands for (session, alert, cmd/result, state, presence, "
    "ota, sync, telemetry/backlog).")


def _rejected(exc: Rejected, loc: list[str | int]) -> InvalidDeviceMessage:
    return InvalidDeviceMessage(
        f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason,
        errors=[ErrorItem(loc=loc, msg=exc.detail or exc.reason, type=exc.reason)])


async def _check_body(request: Request, rt: Runtime, appliance_id: uuid.UUID) -> None:
    await rt.limiter.hit(DEVICE_LIMIT, "device_ingest", str(appliance_id))
    try:
        check_raw(await request.body())
    except Rejected as exc:
        metrics.rejected.labels("https", exc.reason).inc()
        if exc.reason == "too_large":
            raise BodyTooLarge(exc.detail) from None
        raise _rejected(exc, ["body"]) from None


@router.post(
    "/telemetry", status_code=202, response_model=TelemetryAccepted,
    responses=responses(DeviceNotAuthenticated, BodyTooLarge, InvalidDeviceMessage, RateLimited),
)
async def post_telemetry(
    appliance: CurrentDevice, rt: RuntimeDep, session: DbSession, request: Request,
    message: Annotated[dict[str, Any], Body(description=TELEMETRY_DOC)],
) -> TelemetryAccepted:
    """Telemetry over HTTPS, for when MQTT is unavailable: stored exactly as if published on
    `up/telemetry` (a message id already stored, by either path, is acknowledged again)."""
    await _check_body(request, rt, appliance.id)
    try:
        parsed = validate(appliance.id, "telemetry", message, _now_ms())
    except Rejected as exc:
        metrics.rejected.labels("https", exc.reason).inc()
        metrics.https_messages.labels("telemetry", "rejected").inc()
        raise _rejected(exc, ["body"]) from None
    outcome = await _ingest(rt, session, [parsed])
    duplicate = outcome.results[parsed.id] != ingest.STORED
    return TelemetryAccepted(
        id=parsed.id, duplicate=duplicate,
        samples_stored=0 if duplicate else len(parsed.samples),
        samples_refused=0 if duplicate else parsed.refused,
    )


@router.post(
    "/events", status_code=202, response_model=EventsAccepted,
    responses=responses(DeviceNotAuthenticated, BodyTooLarge, InvalidDeviceMessage, RateLimited),
)
async def post_events(
    appliance: CurrentDevice, rt: RuntimeDep, session: DbSession, request: Request,
    body: Annotated[dict[str, Any], Body(description=EVENTS_DOC)],
) -> EventsAccepted:
    """Session events, alerts, command results and other up/ messages over HTTPS, in one
    batch. Each is validated on its own: an invalid one is reported (`rejected` with its
    `code`) and the others are stored."""
    await _check_body(request, rt, appliance.id)
    items = body.get("events")
    if type(items) is not list or not 1 <= len(items) <= MAX_EVENTS:
        raise InvalidDeviceMessage(f"`events` must be a list of 1 to {MAX_EVENTS} items",
                                   errors=[ErrorItem(loc=["body", "events"], msg="invalid",
                                                     type="bad_events")])
    results: list[EventResult] = []
    valid: list[tuple[int, DeviceMessage]] = []
    now_ms = _now_ms()
    for index, item in enumerate(items):
        try:
            valid.append((index, _event(appliance.id, item, now_ms)))
        except Rejected as exc:
            metrics.rejected.labels("https", exc.reason).inc()
            results.append(EventResult(index=index, id=None, status="rejected", code=exc.reason))
    outcome = await _ingest(rt, session, [message for _i, message in valid])
    answers = ingest.per_message([message for _i, message in valid], outcome)
    for (index, message), (_m, result) in zip(valid, answers, strict=True):
        results.append(EventResult(index=index, id=message.id,
                                   status="stored" if result == ingest.STORED else "duplicate"))
    results.sort(key=lambda result: result.index)
    return EventsAccepted(results=results)


def _event(appliance_id: uuid.UUID, item: Any, now_ms: int) -> DeviceMessage:
    if type(item) is not dict or item.get("topic") not in KINDS:
        raise Rejected("bad_event", "each event is an up/ message body with its `topic`")
    if item["topic"] == "telemetry":
        raise Rejected("bad_event", "telemetry goes to POST /device/telemetry")
    return validate(appliance_id, item["topic"], item, now_ms)


def _now_ms() -> int:
    return int(clock.utcnow().timestamp() * 1000)


async def _ingest(rt: Runtime, session: AsyncSession,
                  messages: list[DeviceMessage]) -> ingest.Outcome:
    rows = await ingest.prepare_rows(rt, messages)
    outcome = await ingest.ingest(rt, session, messages, clock.utcnow(), rows)
    for message, result in ingest.per_message(messages, outcome):
        metrics.https_messages.labels(message.kind, result).inc()

    async def committed() -> None:
        ingest.observe_committed(outcome, clock.utcnow())
        await ingest.publish_events(rt, outcome)

    after_commit(session, committed)
    return outcome
