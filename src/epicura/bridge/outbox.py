"""Messages to appliances (`epicura/v1/{device_id}/down/...`) go through the job outbox.

A module that must tell an appliance something (a command, new desired config, a sync nudge)
calls `enqueue_down` inside its transaction: the message is published after the commit by the
`mqtt.publish` job (bridge/publisher.py), retried while the broker is away, and never sent for
a change that rolled back.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.runtime import Runtime

PUBLISH_JOB = "mqtt.publish"
TOPIC_ROOT = "epicura/v1"
DOWN_TOPICS = frozenset({"cmd", "config", "ota", "sync"})


def down_topic(device_id: uuid.UUID, name: str) -> str:
    if name not in DOWN_TOPICS:
        raise ValueError(f"unknown down topic {name!r}")
    return f"{TOPIC_ROOT}/{device_id}/down/{name}"


def enqueue_down(
    rt: Runtime,
    session: AsyncSession,
    device_id: uuid.UUID,
    name: str,
    payload: dict[str, Any] | None,
    *,
    retain: bool = False,
    expiry_s: int | None = None,
) -> None:
    """Queue one QoS 1 message for the appliance; `payload=None` with `retain=True` clears the
    retained message of that topic."""
    rt.jobs.enqueue(session, PUBLISH_JOB, {
        "topic": down_topic(device_id, name),
        "payload": payload,
        "retain": retain,
        "expiry_s": expiry_s,
    })
