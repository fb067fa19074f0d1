"""Live channels: every event gets an id on its channel and is held for a while, so a client that
reconnects resumes with `since` instead of refetching everything.

A channel (`appliance:{id}`, `session:{id}`, `user:{id}`) has a Redis stream holding its recent
events. Publishing runs one Lua script per batch that, for each event, appends it to its stream
(the stream id is the event id: `{ms}-{seq}`, increasing per channel), trims entries older than
the hold, and publishes the event, id included, on the instance bus. Append and publish are one
atomic step, so the order clients see live is the order of the ids, whichever instance published.

Telemetry is not held and carries no id: it is conflated to one event a second anyway, and a
client that was away reads the gap over REST (`GET /telemetry/{id}`).

A `since` is accepted when it is within the hold and this Redis has held every event since it:
the `epoch` key, written with the first event or id handed out, is the millisecond after which
everything is held. A Redis that lost its data has a newer epoch, and the client is told to
resync rather than silently miss what was lost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

from epicura.kit.metrics import registry
from epicura.kit.runtime import Runtime

log = structlog.get_logger("epicura.realtime.channels")

HOLD_S = 600  # the spec promises at least the last 5 minutes
MAX_REPLAY = 1000  # more missed than this: refetch over REST instead
TELEMETRY = "telemetry"
EVENT_ID = re.compile(r"^(\d{1,15})-(\d{1,19})$")
FUTURE_SLACK_MS = 60_000

# KEYS: stream and bus key pairs, then the epoch key. ARGV: hold (ms), then one JSON object per
# event. Returns the ids given.
_PUBLISH = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold_ms = tonumber(ARGV[1])
redis.call('SET', KEYS[#KEYS], now_ms - 1, 'NX')
local ids = {}
for i = 2, #ARGV do
  local stream = KEYS[2 * i - 3]
  local id = redis.call('XADD', stream, 'MINID', '~', now_ms - hold_ms, '*', 'e', ARGV[i])
  redis.call('PEXPIRE', stream, hold_ms)
  redis.call('PUBLISH', KEYS[2 * i - 2], '{"id":"' .. id .. '",' .. string.sub(ARGV[i], 2))
  ids[#ids + 1] = id
end
return ids
"""

# KEYS: the stream, the epoch key. Handing out an id starts the epoch too (a `since` of it is
# good for as long as this Redis keeps its data).
_LAST_ID = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], now_ms - 1, 'NX')
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then
  return newest[1][1]
end
return (now_ms - 1) .. '-0'
"""

Event = tuple[str, dict[str, Any]]

publish_failures = Counter(
    "epicura_live_events_lost_total",
    "Best-effort live events not published because Redis could not take them",
    registry=registry,
)


class InvalidEventId(ValueError):
    """A `since` that is not an event id of ours."""


def parse_id(value: object) -> tuple[int, int]:
    """An event id as a comparable pair; raises InvalidEventId for anything else."""
    match = EVENT_ID.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidEventId("an event id looks like '1732700000000-0'")
    return int(match[1]), int(match[2])


def _stream_key(rt: Runtime, channel: str) -> str:
    return rt.keys("ws", channel)


def _epoch_key(rt: Runtime) -> str:
    return rt.keys("ws", "epoch")


async def publish(rt: Runtime, events: Sequence[Event]) -> list[str]:
    """Publish `(channel, {"type", "data"})` events; held ones get their id. Returns the ids of
    the held events, in order. Raises RedisError when Redis cannot take them (the outbox relay
    retries; best-effort callers log and move on)."""
    held = [(channel, event) for channel, event in events if event.get("type") != TELEMETRY]
    passing = [(channel, event) for channel, event in events if event.get("type") == TELEMETRY]
    if passing:
        await rt.bus.publish_many(passing)
    if not held:
        return []
    keys: list[str] = []
    for channel, _ in held:
        keys += [_stream_key(rt, channel), rt.bus.channel_key(channel)]
    keys.append(_epoch_key(rt))
    args = [str(HOLD_S * 1000)] + [orjson.dumps(event, default=str).decode()
                                    for _, event in held]
    script = rt.redis.register_script(_PUBLISH)
    ids = await script(keys=keys, args=args)
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


async def _now_ms(rt: Runtime) -> int:
    seconds, micros = await rt.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def last_id(rt: Runtime, channel: str) -> str:
    """The id a subscriber resumes after: the channel's newest held event or, with none held,
    an id just below anything published from now on."""
    script = rt.redis.register_script(_LAST_ID)
    found = await script(keys=[_stream_key(rt, channel), _epoch_key(rt)])
    return found.decode() if isinstance(found, bytes) else str(found)


async def replay(rt: Runtime, channel: str, since: object) -> list[dict[str, Any]] | None:
    """The events after `since` on `channel`, oldest first; None when they are no longer all
    held (the client must resync). Raises InvalidEventId for a malformed or impossible `since`."""
    since_ms, since_seq = parse_id(since)
    now_ms = await _now_ms(rt)
    if since_ms > now_ms + FUTURE_SLACK_MS:
        raise InvalidEventId("that event id is in the future")
    if since_ms < now_ms - HOLD_S * 1000:
        return None
    async with rt.redis.pipeline(transaction=True) as pipe:
        pipe.get(_epoch_key(rt))
        pipe.xrange(_stream_key(rt, channel), min=f"({since_ms}-{since_seq}",
                    count=MAX_REPLAY + 1)
        epoch, entries = await pipe.execute()
    if epoch is None or int(epoch) > since_ms or len(entries) > MAX_REPLAY:
        return None
    return [_event_of(entry_id, fields) for entry_id, fields in entries]


def _event_of(entry_id: bytes | str, fields: dict[bytes | str, bytes | str]) -> dict[str, Any]:
    raw = fields.get(b"e", fields.get("e"))
    event: dict[str, Any] = orjson.loads(raw or b"{}")
    event["id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return event


async def publish_quietly(rt: Runtime, events: Sequence[Event]) -> None:
    """Best effort: live events whose loss a client repairs by refetching."""
    try:
        await publish(rt, events)
    except RedisError as exc:
        publish_failures.inc(len(events))
        log.warning("live_events_lost", events=len(events), error=type(exc).__name__)
