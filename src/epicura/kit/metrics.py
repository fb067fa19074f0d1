"""Prometheus metrics of this process, served at `/metrics`."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

registry = CollectorRegistry(auto_describe=True)

http_requests = Counter(
    "epicura_http_requests_total", "HTTP requests", ("method", "route", "status"), registry=registry
)
http_latency = Histogram(
    "epicura_http_request_duration_seconds",
    "HTTP request latency",
    ("method", "route"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=registry,
)
http_in_flight = Gauge("epicura_http_in_flight", "HTTP requests in progress", registry=registry)
jobs_finished = Counter(
    "epicura_jobs_finished_total",
    "Background jobs finished",
    ("kind", "outcome"),
    registry=registry,
)
queue_depth = Gauge(
    "epicura_job_queue_depth", "Jobs waiting, by state", ("state",), registry=registry
)
auth_events = Counter(
    "epicura_auth_events_total", "Authentication events", ("event",), registry=registry
)
websocket_connections = Gauge(
    "epicura_websocket_connections", "Open WebSocket connections", registry=registry
)


def render() -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
