"""WebSocket gateway metrics, in the process's registry (served at `/metrics`). The number of
open sockets is `epicura_websocket_connections` (kit/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter

from epicura.kit.metrics import registry, websocket_connections

__all__ = ["closes", "events_sent", "frames_refused", "overflows", "telemetry_conflated",
           "websocket_connections"]

events_sent = Counter(
    "epicura_websocket_frames_sent_total", "Frames written to sockets, by type",
    ("type",), registry=registry,
)
closes = Counter(
    "epicura_websocket_closes_total",
    "Closed sockets, by close code (the server's, the client's, or 1006 when none came)",
    ("code",), registry=registry,
)
overflows = Counter(
    "epicura_websocket_send_queue_overflows_total",
    "Sockets closed with 1013 because their send queue was full", registry=registry,
)
telemetry_conflated = Counter(
    "epicura_websocket_telemetry_conflated_total",
    "Telemetry events replaced by a newer one before a slow socket took them", registry=registry,
)
frames_refused = Counter(
    "epicura_websocket_frames_refused_total", "Client frames refused, by error code",
    ("code",), registry=registry,
)
