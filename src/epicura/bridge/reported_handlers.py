"""The built-in handlers: presence, reported state, alerts and command results."""

from __future__ import annotations

import uuid

from epicura.appliances import reported
from epicura.bridge.handlers import HandlerContext, register
from epicura.bridge.payloads import DeviceMessage
from epicura.notifications import service as notifications_service


def appliance_channel(appliance_id: uuid.UUID) -> str:
    return f"appliance:{appliance_id}"


def user_channel(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


async def on_presence(ctx: HandlerContext, message: DeviceMessage) -> None:
    event = await reported.apply_presence(ctx.session, message.device_id, message.body, ctx.now)
    if event is not None:
        ctx.emit(appliance_channel(message.device_id), "appliance.presence", event)
        if not event["online"]:  # a cook waiting on a session is told
            await notifications_service.appliances_went_offline(
                ctx.session, [message.device_id], ctx.now)


async def on_state(ctx: HandlerContext, message: DeviceMessage) -> None:
    state = await reported.apply_state(ctx.session, message.device_id, message.body, message.ts,
                                       ctx.now)
    if state is not None:
        ctx.emit(appliance_channel(message.device_id), "appliance.state",
                 {"appliance_id": str(message.device_id), "state": state})


async def on_alert(ctx: HandlerContext, message: DeviceMessage) -> None:
    change = await reported.apply_alert(ctx.session, message.device_id, message.body, ctx.now)
    raised = change.data.get("state") == "raised"  # must reach the cook: through the outbox
    ctx.emit(appliance_channel(message.device_id), "alert", change.data, durable=raised)
    if change.owner_id is not None:
        ctx.emit(user_channel(change.owner_id), "alert", change.data, durable=raised)


async def on_command_result(ctx: HandlerContext, message: DeviceMessage) -> None:
    from epicura.appliances import commands

    body = message.body
    request_id = uuid.UUID(body["request_id"])
    recorded = await commands.record_command_result(
        ctx.session, message.device_id, request_id, body["status"], body.get("reason"))
    if recorded is False:  # not this appliance's command, or already final
        return
    data = {"request_id": str(request_id), "status": body["status"]}
    if body.get("reason") is not None:
        data["reason"] = body["reason"]
    ctx.emit(appliance_channel(message.device_id), "command.result", data)


register("presence", on_presence)
register("state", on_state)
register("alert", on_alert)
register("cmd/result", on_command_result)
