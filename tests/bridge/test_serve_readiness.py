"""`serve`'s /readyz names the MQTT broker when one is configured."""

from __future__ import annotations

import pytest

from epicura.config import Settings
from tests.brokers import PrivateBroker
from tests.conftest import free_port
from tests.support import Mailbox, running

pytestmark = pytest.mark.anyio


async def _readyz(settings: Settings, mailbox: Mailbox) -> tuple[int, dict[str, object]]:
    async with running(settings, mailbox) as service:
        reply = await service.client.get("/readyz")
        return reply.status_code, reply.json()


async def test_readyz_reports_the_broker(
    pg_settings: Settings, smtp: tuple[int, Mailbox], dynsec_broker: PrivateBroker
) -> None:
    settings = pg_settings.model_copy(update={"mqtt_broker_url": dynsec_broker.url})
    status, body = await _readyz(settings, smtp[1])
    assert status == 200
    assert body["checks"] == {"database": "ok", "redis": "ok", "mqtt": "ok"}


async def test_readyz_is_503_when_the_broker_is_unreachable(
    pg_settings: Settings, smtp: tuple[int, Mailbox]
) -> None:
    nobody = f"mqtt://svc:secret@127.0.0.1:{free_port()}"
    settings = pg_settings.model_copy(update={"mqtt_broker_url": nobody})
    status, body = await _readyz(settings, smtp[1])
    assert status == 503
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["database"] == "ok"
    assert str(checks["mqtt"]).startswith("down")


async def test_readyz_refuses_a_wrong_service_password(
    pg_settings: Settings, smtp: tuple[int, Mailbox], dynsec_broker: PrivateBroker
) -> None:
    wrong = f"mqtt://{dynsec_broker.service_username}:not-the-password@127.0.0.1:{dynsec_broker.port}"
    settings = pg_settings.model_copy(update={"mqtt_broker_url": wrong})
    status, body = await _readyz(settings, smtp[1])
    assert status == 503
    assert str(body["checks"]["mqtt"]).startswith("down")  # type: ignore[index]
