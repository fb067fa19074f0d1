"""The payloads an appliance sends (`mqtt-topics.md`): every one is an envelope `{v, id, ts}`
plus the topic's fields. Pure functions of their inputs and the time given."""

from __future__ import annotations

import uuid
from typing import Any

TOPIC_ROOT = "epicura/v1"
MAX_SAMPLES_PER_MESSAGE = 300
DEFAULT_MODEL, DEFAULT_HW_REVISION = "epicura-1", "rev-a"
FIRMWARE_VERSION = "1.4.2"

# The default capability profile (domain.md: `epicura-1 / rev-a`).
CAPABILITIES: dict[str, Any] = {
    "min_temp_c": 37, "max_temp_c": 180, "speed_min": 0, "speed_max": 10,
    "max_duration_s": 12 * 3600, "bowl_capacity_ml": 2200, "max_weight_g": 5000,
    "reverse": True,
    "actions": ["heat", "stir", "blend", "knead", "steam", "weigh", "await_user", "rest",
                "manual"],
}
DEFAULT_SETTINGS: dict[str, Any] = {
    "units": "metric", "locale": "en-GB", "timezone": "Europe/London", "sounds": True,
    "allow_remote_pause": True, "ota_window": "02:00-05:00",
}


def up_topic(device_id: str, name: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/up/{name}"


def down_filter(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/down/#"


def envelope(ts_ms: int, body: dict[str, Any], message_id: str | None = None) -> dict[str, Any]:
    return {"v": 1, "id": message_id or str(uuid.uuid4()), "ts": ts_ms, **body}


def presence_online(ts_ms: int, firmware_version: str, boot_id: str) -> dict[str, Any]:
    return envelope(ts_ms, {"state": "online", "firmware_version": firmware_version,
                            "boot_id": boot_id})


def presence_offline(ts_ms: int, reason: str) -> dict[str, Any]:
    """`reason` is `lost` in the last will, `shutdown` on a clean stop."""
    return envelope(ts_ms, {"state": "offline", "reason": reason})


def reported_state(ts_ms: int, *, firmware_version: str, hw_revision: str, channel: str,
                   settings: dict[str, Any], storage_free_mb: int, wifi_rssi: int,
                   session_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "firmware_version": firmware_version, "hw_revision": hw_revision, "channel": channel,
        "capabilities": CAPABILITIES, "settings": settings,
        "storage_free_mb": storage_free_mb, "wifi_rssi": wifi_rssi,
    }
    if session_id is not None:
        body["session_id"] = session_id
    return envelope(ts_ms, body)


def telemetry(ts_ms: int, *, seq: int, boot_id: str, session_id: str | None,
              samples: list[dict[str, Any]]) -> dict[str, Any]:
    if not 1 <= len(samples) <= MAX_SAMPLES_PER_MESSAGE:
        raise ValueError(f"a telemetry message carries 1 to {MAX_SAMPLES_PER_MESSAGE} samples")
    body: dict[str, Any] = {"seq": seq, "boot_id": boot_id, "samples": samples}
    if session_id is not None:
        body["session_id"] = session_id
    return envelope(ts_ms, body)


def command_result(ts_ms: int, request_id: str, status: str,
                   reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": request_id, "status": status}
    if reason is not None:
        body["reason"] = reason
    return envelope(ts_ms, body)


def sync_report(ts_ms: int, cursor: str | None,
                installed: list[dict[str, Any]]) -> dict[str, Any]:
    return envelope(ts_ms, {"cursor": cursor, "installed": installed})
