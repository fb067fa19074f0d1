"""The WebSocket protocol's vocabulary: limits, close codes, error codes, frames and channel names.

Frames are JSON text `{type, id?, ref?, channel?, data}` (websocket-events.md). Everything here is
pure: no I/O, so the gateway and `epicura watch` share it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

# --- close codes -----------------------------------------------------------------------------
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # a sustained flood of frames
CLOSE_TOO_BIG = 1009  # a frame over the size limit
CLOSE_INTERNAL = 1011  # also uvicorn's keepalive ping timeout: silent for 60 s
CLOSE_RESTART = 1012  # the server is shutting down (uvicorn sends it)
CLOSE_OVERLOADED = 1013  # the send queue overflowed: reconnect and resume with `since`
CLOSE_UNAUTHORIZED = 4401  # no/invalid/expired token, revoked login session, another user
CLOSE_TOO_MANY_SOCKETS = 4429  # this user has too many sockets open on this instance

# --- error codes of `error` frames -----------------------------------------------------------
INVALID_JSON = "invalid_json"
INVALID_FRAME = "invalid_frame"
UNKNOWN_TYPE = "unknown_type"
AUTH_REQUIRED = "auth_required"
INVALID_CHANNEL = "invalid_channel"
NOT_FOUND = "not_found"
INVALID_SINCE = "invalid_since"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "dependency_unavailable"

TELEMETRY = "telemetry"
Ref = str | int  # a client frame's `ref`, echoed as it came
CLIENT_TYPES = frozenset({"auth", "subscribe", "unsubscribe", "command", "ping"})


@dataclass
class Limits:
    """Per-socket and per-instance bounds. Tests shrink them; production uses the defaults."""

    auth_timeout_s: float = 5.0
    max_frame_bytes: int = 64 * 1024
    send_queue: int = 256  # events waiting to be written, telemetry slots not counted
    telemetry_interval_s: float = 1.0  # per channel, newest kept
    max_subscriptions: int = 100
    sockets_per_user: int = 20  # per instance
    frames_per_s: float = 20.0
    frame_burst: float = 40.0
    # Refused frames allowed before the socket is closed with 1008: a burst, then per second.
    refusals_burst: float = 100.0
    refusals_per_s: float = 10.0
    sweep_every_s: float = 2.0  # token expiry and revocation checks
    ownership_every_s: float = 30.0  # subscriptions to objects no longer the user's are dropped
    close_timeout_s: float = 5.0  # sending our close frame to a client that does not read


# Protocol-level keepalive by uvicorn: a ping every 20 s; no pong within 40 s more closes the
# socket (1011), so a socket silent for 60 s is closed. `serve` and the tests run uvicorn so.
UVICORN_WS_OPTIONS: dict[str, Any] = {
    "ws": "websockets-sansio",
    "ws_max_size": Limits.max_frame_bytes,
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 40.0,
}


class FrameError(Exception):
    """A client frame the server answers with an `error` frame."""

    def __init__(self, code: str, message: str, ref: Ref | None = None,
                 channel: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.channel = channel


@dataclass(frozen=True)
class ClientFrame:
    type: str
    data: dict[str, Any]
    ref: Ref | None


def parse_frame(text: str) -> ClientFrame:
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError(INVALID_JSON, "frames are JSON text") from None
    if not isinstance(raw, dict):
        raise FrameError(INVALID_JSON, "a frame is a JSON object")
    ref = raw.get("ref")
    if ref is not None and (isinstance(ref, bool) or not isinstance(ref, str | int)
                            or len(str(ref)) > 100):
        raise FrameError(INVALID_FRAME, "`ref` is a string (or integer) of at most 100 "
                         "characters")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise FrameError(INVALID_FRAME, "a frame has a string `type`", ref)
    if kind not in CLIENT_TYPES:
        raise FrameError(UNKNOWN_TYPE, f"unknown frame type {kind[:50]!r}", ref)
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise FrameError(INVALID_FRAME, "`data` is a JSON object", ref)
    return ClientFrame(kind, data, ref)


def frame(kind: str, data: dict[str, Any], *, channel: str | None = None,
          ref: Ref | None = None, event_id: str | None = None) -> str:
    body: dict[str, Any] = {"type": kind}
    if event_id is not None:
        body["id"] = event_id
    if ref is not None:
        body["ref"] = ref
    if channel is not None:
        body["channel"] = channel
    body["data"] = data
    return orjson.dumps(body, default=str).decode()


def resync_frame(channel: str) -> str:
    return frame("resync.required", {"channel": channel}, channel=channel)


def error_frame(code: str, message: str, *, ref: Ref | None = None,
                channel: str | None = None) -> str:
    return frame("error", {"code": code, "message": message}, channel=channel, ref=ref)


# --- channels --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Channel:
    """A channel as the client names it (`user`, `appliance:{id}`, `session:{id}`)."""

    kind: str  # user | appliance | session
    object_id: uuid.UUID | None  # None for `user`

    @property
    def name(self) -> str:
        return "user" if self.kind == "user" else f"{self.kind}:{self.object_id}"

    def bus_name(self, user_id: uuid.UUID) -> str:
        return f"user:{user_id}" if self.kind == "user" else self.name


def parse_channel(value: object, ref: Ref | None) -> Channel:
    """The channel a client names; an unknown kind is `invalid_channel`, a malformed id
    `not_found` (no such object exists, as for someone else's)."""
    if not isinstance(value, str) or len(value) > 100:
        raise FrameError(INVALID_CHANNEL, "`channel` is `user`, `appliance:{id}` or "
                         "`session:{id}`", ref)
    if value == "user":
        return Channel("user", None)
    kind, _, object_id = value.partition(":")
    if kind not in ("appliance", "session"):
        raise FrameError(INVALID_CHANNEL, "`channel` is `user`, `appliance:{id}` or "
                         "`session:{id}`", ref, value)
    try:
        return Channel(kind, uuid.UUID(object_id))
    except ValueError:
        raise FrameError(NOT_FOUND, "no such channel", ref, value) from None


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take()` is False when empty."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
