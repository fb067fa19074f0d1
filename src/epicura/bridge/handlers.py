"""Per-kind handlers of device messages: how modules plug into ingest.

Telemetry is stored by the ingest pipeline itself (in bulk); every other kind goes to the
handler registered for it, message by message, inside the batch's transaction, after the
message was deduplicated (a handler never sees the same message id twice). A handler:

    async def on_session_event(ctx: HandlerContext, message: DeviceMessage) -> None

registered with `register("session", on_session_event)` at import time of its module, which is
listed in `load()`. It writes with `ctx.session` (flush only, never commit) and announces live
events with `ctx.emit(channel, type, data)`: they are published on the event bus after the
commit, never for a batch that rolled back. A kind with no handler is still validated, counted
and acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.bridge.payloads import KIND_SET, TELEMETRY_KINDS, DeviceMessage
from epicura.kit.runtime import Runtime
from epicura.realtime import outbox

Event = tuple[str, dict[str, Any]]


@dataclass
class HandlerContext:
    rt: Runtime
    session: AsyncSession
    now: datetime
    events: list[Event] = field(default_factory=list)
    durable: int = 0

    def emit(self, channel: str, event_type: str, data: dict[str, Any], *,
             durable: bool = False) -> None:
        """Publish `{"type": event_type, "data": data}` on `channel` once the batch commits;
        `durable`: through the outbox, so that not even a crash right after the commit loses it."""
        if durable:
            outbox.record(self.session, channel, event_type, data)
            self.durable += 1
        else:
            self.events.append((channel, {"type": event_type, "data": data}))


Handler = Callable[[HandlerContext, DeviceMessage], Awaitable[None]]
_handlers: dict[str, Handler] = {}


def register(kind: str, fn: Handler) -> Handler:
    """Make `fn` the handler of `up/{kind}` messages (one per kind; telemetry is built in)."""
    if kind not in KIND_SET or kind in TELEMETRY_KINDS:
        raise ValueError(f"no handler can be registered for {kind!r}")
    _handlers[kind] = fn
    return fn


def handler_for(kind: str) -> Handler | None:
    return _handlers.get(kind)


_loaded = False


def load() -> None:
    """Import the modules that register handlers (each registers at import time); ingest calls
    it before its first batch. A module with device-message handlers adds its import here."""
    global _loaded
    if _loaded:
        return
    import epicura.bridge.reported_handlers  # noqa: F401 - presence, state, alert, cmd/result
    from epicura.appliances import sync as _device_sync  # noqa: F401 - up/sync reports
    from epicura.ota import handlers as _ota  # noqa: F401 - up/ota progress
    from epicura.sessions import mirror as _sessions  # noqa: F401 - up/session events

    _loaded = True
