"""Ingest metrics, in the process's registry (served at `/metrics` by `serve` and by the
bridge's own probe port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from epicura.kit.metrics import registry

# outcome: stored, duplicate, rejected, unknown_device, handler_error, dropped_error
mqtt_messages = Counter(
    "epicura_mqtt_messages_total", "Device messages received over MQTT, by kind and outcome",
    ("kind", "outcome"), registry=registry,
)
https_messages = Counter(
    "epicura_device_https_messages_total",
    "Device messages received over the HTTPS fallback, by kind and outcome",
    ("kind", "outcome"), registry=registry,
)
rejected = Counter(
    "epicura_ingest_rejected_total", "Device messages dropped as invalid, by reason",
    ("transport", "reason"), registry=registry,
)
samples = Counter(
    "epicura_telemetry_samples_total", "Telemetry samples: stored, or refused (out of range/time)",
    ("outcome",), registry=registry,
)
ingest_lag = Histogram(
    "epicura_ingest_lag_seconds", "From the device's publish time (`ts`) to the commit",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=registry,
)
batch_seconds = Histogram(
    "epicura_ingest_batch_seconds", "Time to store one batch (one transaction)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=registry,
)
batch_size = Histogram(
    "epicura_ingest_batch_messages", "Messages per stored batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000), registry=registry,
)
store_failures = Counter(
    "epicura_ingest_store_failures_total", "Batches that failed to store (retried)",
    registry=registry,
)
mqtt_connected = Gauge(
    "epicura_bridge_mqtt_connected", "1 while the bridge's MQTT session is up", registry=registry,
)
unacked = Gauge(
    "epicura_bridge_unacked_messages", "Messages received and not yet acknowledged",
    registry=registry,
)
mqtt_published = Counter(
    "epicura_mqtt_published_total", "down/ messages published, by outcome", ("outcome",),
    registry=registry,
)
presence_sweeps = Counter(
    "epicura_presence_marked_inactive_total", "Appliances marked offline after 90 s of silence",
    registry=registry,
)
events_dropped = Counter(
    "epicura_bridge_events_dropped_total",
    "Live events not published because the bus was still busy with earlier ones",
    registry=registry,
)
