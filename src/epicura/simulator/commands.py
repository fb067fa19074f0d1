"""What an appliance does with the messages the cloud sends down (`mqtt-topics.md`):
commands answered on `up/cmd/result` (`accepted`, then `done` or `failed`; `rejected` when it
cannot), desired config, and sync nudges."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from epicura.simulator import messages
from epicura.simulator.cloud import CloudError

if TYPE_CHECKING:
    from epicura.simulator.device import Device
    from epicura.simulator.program import Program

log = structlog.get_logger("epicura.simulator")
RECENT_RESULTS = 64


class Refused(Exception):
    """The appliance rejects the command; the message is the `reason`."""


class Failed(Exception):
    """The command was accepted but could not be carried out; the message is the `reason`."""


Handler = Callable[["Device", dict[str, Any]], Awaitable[None]]


def handle_down(device: Device, name: str, payload: dict[str, Any] | None) -> None:
    if payload is None:  # a cleared retained message (e.g. down/ota at the end of a rollout)
        return
    if name == "cmd":
        device.spawn(run_command(device, payload))
    elif name == "config":
        apply_config(device, payload)
    elif name == "sync":
        device.spawn(sync_quietly(device))
    elif name == "ota":
        device.ota.on_notice(payload)


def expired(expires_at: Any, now_ms: int) -> bool:
    if isinstance(expires_at, int | float):
        return expires_at < now_ms
    if isinstance(expires_at, str):
        try:
            moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        return moment.timestamp() * 1000 < now_ms
    return False


async def run_command(device: Device, command: dict[str, Any]) -> None:
    request_id = command.get("request_id")
    if not isinstance(request_id, str):
        return
    if (previous := device.recent_results.get(request_id)) is not None:  # a QoS 1 redelivery
        device.send("cmd/result", previous)
        return
    if expired(command.get("expires_at"), device.now_ms()):
        log.info("simulator.command_expired", device_id=device.device_id, request_id=request_id)
        return
    device.counters.commands += 1
    name, args = command.get("name"), command.get("args") or {}
    handler = HANDLERS.get(str(name))
    try:
        if handler is None or not isinstance(args, dict):
            raise Refused("unknown_command")
        await handler(device, {"request_id": request_id, **args})
        status, reason = "done", None
    except Refused as exc:
        status, reason = "rejected", str(exc)
    except Failed as exc:
        status, reason = "failed", str(exc)
    device.flush_events()  # what the command caused goes before its result
    _result(device, request_id, status, reason)


def _result(device: Device, request_id: str, status: str, reason: str | None = None) -> None:
    body: dict[str, Any] = {"request_id": request_id, "status": status}
    if reason is not None:
        body["reason"] = reason
    device.send("cmd/result", body)
    if status != "accepted":
        device.recent_results[request_id] = body
        while len(device.recent_results) > RECENT_RESULTS:
            device.recent_results.pop(next(iter(device.recent_results)))


def _accept(device: Device, args: dict[str, Any]) -> None:
    _result(device, args["request_id"], "accepted")


async def identify(device: Device, args: dict[str, Any]) -> None:
    _accept(device, args)  # the display blinks; nothing to report


async def prepare(device: Device, args: dict[str, Any]) -> None:
    if device.model.busy or device.ota.installing:
        raise Refused("busy")
    recipe_id = args.get("recipe_id")
    if not isinstance(recipe_id, str):
        raise Refused("invalid_args")
    _accept(device, args)
    version = args.get("recipe_version")
    servings = args.get("servings")
    program = await _load(device, recipe_id, version, servings)
    if program is None and await sync(device):  # a private recipe just sent to the appliance
        program = await _load(device, recipe_id, version, servings)
    if program is None:
        raise Failed("recipe_unavailable")
    session_id = args.get("session_id")
    device.prepare(program, session_id if isinstance(session_id, str) else None)


async def _load(device: Device, recipe_id: str, version: Any, servings: Any) -> Program | None:
    """From the synced library, else the public recipe API."""
    held = device.library.get(recipe_id)
    if version is None and held is not None:
        version = held.get("version")
    return await device.book.program(
        recipe_id, version if isinstance(version, int) else None,
        servings=servings if isinstance(servings, int) else None,
        content=_library_content(device, recipe_id, version))


async def pause(device: Device, args: dict[str, Any]) -> None:
    if not device.model.busy:
        raise Refused("no_session")
    if not device.settings.get("allow_remote_pause", True):
        raise Refused("remote_pause_disabled")
    _accept(device, args)
    if not device.model.pause("remote"):
        raise Failed("not_pausable")


async def abort(device: Device, args: dict[str, Any]) -> None:
    if not device.model.busy:
        if device.prepared is not None:
            device.prepared = None
            _accept(device, args)
            return
        raise Refused("no_session")
    _accept(device, args)
    device.model.abort("remote")


async def sync_now(device: Device, args: dict[str, Any]) -> None:
    _accept(device, args)
    if not await sync(device):
        raise Failed("sync_failed")


async def ota_check(device: Device, args: dict[str, Any]) -> None:
    """Check for an update at once (`done` once asked); an update offered goes on."""
    _accept(device, args)
    if not await device.ota.check_now():
        raise Failed("check_failed")


async def config_reload(device: Device, args: dict[str, Any]) -> None:
    _accept(device, args)
    try:
        reply = await device.cloud.device_get(await device.access_token(), "/device/config")
    except (CloudError, OSError) as exc:
        raise Failed("config_unavailable") from exc
    if reply.status_code != 200:
        raise Failed("config_unavailable")
    apply_config(device, reply.json())


async def unpair(device: Device, args: dict[str, Any]) -> None:
    _accept(device, args)
    device.model.wipe()
    device.prepared = None
    device.library.clear()
    device.sync_cursor = None
    device.settings = dict(messages.DEFAULT_SETTINGS)
    device.send("state", device.state_payload(), retain=True)


HANDLERS: dict[str, Handler] = {
    "identify": identify, "session.prepare": prepare, "session.pause": pause,
    "session.abort": abort, "sync.now": sync_now, "ota.check": ota_check,
    "config.reload": config_reload, "unpair": unpair,
}


def apply_config(device: Device, config: dict[str, Any]) -> None:
    """Desired config from `down/config` (retained) or `GET /device/config`: a newer version
    replaces the settings, and the reported state says so."""
    if config.get("paired") is False and device.library:  # unpaired while it was away
        device.library.clear()
        device.sync_cursor = None
    version, settings = config.get("version"), config.get("settings")
    if not isinstance(version, int) or not isinstance(settings, dict):
        return
    if version <= device.config_version:
        return
    device.config_version = version
    device.settings = {**device.settings, **settings}
    device.send("state", device.state_payload(), retain=True)


async def sync_quietly(device: Device) -> None:
    await sync(device)


async def sync(device: Device) -> bool:
    """Pull library changes since the cursor (`GET /device/sync`), then report `up/sync`."""
    cursor = device.sync_cursor
    try:
        while True:
            params = {"cursor": cursor} if cursor else None
            reply = await device.cloud.device_get(await device.access_token(), "/device/sync",
                                                  params)
            if reply.status_code == 401:
                device.forget_token()
            if reply.status_code != 200:
                log.info("simulator.sync_unavailable", device_id=device.device_id,
                         status=reply.status_code)
                return False
            page = reply.json()
            _apply_changes(device, page)
            cursor = page.get("cursor") or cursor
            if not page.get("has_more"):
                break
    except (CloudError, OSError, ValueError) as exc:
        log.info("simulator.sync_failed", device_id=device.device_id, error=str(exc))
        return False
    device.sync_cursor = cursor
    if not cursor:  # nothing to report against (the service gave no cursor)
        return True
    installed = [{"recipe_id": rid, "version": item["version"], "sha256": item["sha256"]}
                 for rid, item in sorted(device.library.items())]
    device.send("sync", {"cursor": cursor, "installed": installed})
    return True


def _apply_changes(device: Device, page: dict[str, Any]) -> None:
    """Install the page's bundles whose SHA-256 matches (the signature is the cloud's key's to
    check; the simulator trusts its own service) and drop the tombstoned recipes."""
    for change in page.get("changes") or []:
        bundle, sha256 = change.get("bundle"), change.get("sha256")
        if not isinstance(bundle, str) or hashlib.sha256(bundle.encode()).hexdigest() != sha256:
            log.warning("simulator.bundle_refused", device_id=device.device_id,
                        recipe_id=change.get("recipe_id"))
            continue
        device.library[str(change["recipe_id"])] = {
            "version": change.get("version"), "sha256": sha256, "bundle": bundle}
    for recipe_id in page.get("deleted") or []:
        device.library.pop(str(recipe_id), None)


def _library_content(device: Device, recipe_id: str, version: Any) -> dict[str, Any] | None:
    """The content of a synced bundle of that version, if the appliance holds one."""
    item = device.library.get(recipe_id)
    if item is None or (version is not None and item.get("version") != version):
        return None
    bundle = item.get("bundle")
    if isinstance(bundle, str):
        try:
            bundle = orjson.loads(bundle)
        except orjson.JSONDecodeError:
            return None
    if isinstance(bundle, dict):
        content = bundle.get("content", bundle)
        if isinstance(content, dict) and "steps" in content:
            return content
    return None
