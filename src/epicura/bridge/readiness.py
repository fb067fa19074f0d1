"""`/readyz` of `serve` includes the MQTT broker when one is configured (rest-api.md: "200 when
PostgreSQL, Redis and the MQTT broker (those configured) answer")."""

from __future__ import annotations

import uuid

from epicura.bridge.broker_admin import BrokerEndpoint
from epicura.kit.runtime import Runtime


async def check_broker(rt: Runtime) -> None:
    """Connect and disconnect with the service's account: the broker answers and accepts it.
    A fresh client id each time, so a probe never takes over another connection's session."""
    assert rt.settings.mqtt_broker_url is not None
    endpoint = BrokerEndpoint.from_url(rt.settings.mqtt_broker_url)
    async with endpoint.client(f"epicura-readyz-{uuid.uuid4().hex[:12]}"):
        pass


def install(rt: Runtime) -> None:
    if rt.settings.mqtt_broker_url is not None:
        rt.extras.setdefault("readiness_checks", {})["mqtt"] = check_broker
