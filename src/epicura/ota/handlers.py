"""`up/ota`: an appliance's update progress, from the bridge (inside its batch transaction)."""

from __future__ import annotations

from pydantic import ValidationError

from epicura.bridge.handlers import HandlerContext, register
from epicura.bridge.payloads import DeviceMessage
from epicura.bridge.reported_handlers import appliance_channel
from epicura.ota import updates
from epicura.ota.schemas import FirmwareStatus

FIELDS = ("rollout_id", "status", "progress_pct", "error_code", "reason", "version")


async def on_ota(ctx: HandlerContext, message: DeviceMessage) -> None:
    try:
        body = FirmwareStatus.model_validate({k: message.body[k] for k in FIELDS
                                              if message.body.get(k) is not None})
    except ValidationError:
        return  # the payload checks passed; a value outside the API's bounds is dropped
    recorded = await updates.record_status(ctx.rt, ctx.session, message.device_id, body,
                                           ctx.now, strict=False)
    if recorded is not None:
        ctx.emit(appliance_channel(message.device_id), "ota.progress", recorded.event)


register("ota", on_ota)
