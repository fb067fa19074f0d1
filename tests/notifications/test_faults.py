"""Faults: Redis away while the relay runs (the notification commits with the relay's mark, so
nothing is lost and nothing doubles), provider timeouts, a token endpoint answering garbage,
an expired APNs provider token, a payload over 4 KiB, `Retry-After` as seconds or a date, and
the provider token's reuse window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from sqlalchemy import func, select

from epicura.auth import service as auth_service
from epicura.config import Settings
from epicura.kit import clock
from epicura.kit.runtime import Runtime
from epicura.notifications.apns import ApnsClient
from epicura.notifications.fcm import FcmClient
from epicura.notifications.models import Notification
from epicura.notifications.providers import PushMessage, retry_after_s
from epicura.realtime import outbox
from tests.conftest import _truncate, delete_keys, free_port
from tests.notifications.conftest import APNS_TOKEN, FCM_TOKEN, Fakes, apns_client
from tests.notifications.fakes import pem_private
from tests.notifications.test_triggers import awaiting
from tests.support import STRONG_PASSWORD

pytestmark = pytest.mark.anyio

MESSAGE = PushMessage(notification_id=str(uuid.uuid4()), title="t", body="b",
                      data={"kind": "alert"}, collapse_key="alert:1", high_priority=True,
                      ttl_s=60)


@pytest.fixture
async def runtimes(pg_settings: Settings, pg_database: str) -> AsyncIterator[tuple[Runtime,
                                                                                  Runtime]]:
    """Two runtimes on the test database without a running service (so no background relay):
    one with Redis, one whose Redis is a closed port."""
    healthy = Runtime.build(pg_settings)
    broken = Runtime.build(pg_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}"}))
    try:
        yield healthy, broken
    finally:
        await healthy.close()
        await broken.close()
        await _truncate(pg_database)
        await delete_keys(pg_settings.redis_prefix)


async def notifications(rt: Runtime) -> int:
    async with rt.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


async def test_redis_away_during_the_relay_loses_and_doubles_nothing(
        runtimes: tuple[Runtime, Runtime]) -> None:
    healthy, broken = runtimes
    async with healthy.db.transaction() as session:
        user = await auth_service.create_admin(healthy, session, "ann@example.com",
                                               STRONG_PASSWORD, "Ann")
        for channel, event_type, data in awaiting(user.id, str(uuid.uuid4()), 0):
            outbox.record(session, channel, event_type, data)
    with pytest.raises(Exception, match=r"(?i)connect"):
        await outbox.relay_once(broken)  # the consumer ran, then the publish failed
    assert await notifications(healthy) == 0  # rolled back with the relay's transaction
    assert await outbox.pending(healthy) == 2
    while await outbox.relay_once(healthy):
        pass
    assert await notifications(healthy) == 1
    assert await outbox.pending(healthy) == 0


async def test_a_provider_that_does_not_answer_is_retried(fakes: Fakes) -> None:
    client = FcmClient.from_service_account(fakes.fcm.service_account(),
                                            base_url=fakes.fcm.base_url)
    await client.aclose()
    client.http = httpx2.AsyncClient(timeout=0.5)
    fakes.fcm.release = asyncio.Event()
    try:
        result = await client.send(FCM_TOKEN, MESSAGE)
    finally:
        fakes.fcm.release.set()
        await client.aclose()
    assert (result.outcome, result.reason) == ("retry", "transport: ReadTimeout")


@pytest.mark.parametrize(("answer", "reason"), [
    ((200, {}, b"<html>not json</html>"), "oauth2 refused (200 )"),
    ((503, {"Retry-After": "30"}, b"{}"), "oauth2 503"),
    ((400, {}, b'{"error": "invalid_grant"}'), "oauth2 refused (400 invalid_grant)"),
])
async def test_a_token_endpoint_that_fails_is_retried(
        fakes: Fakes, answer: tuple[int, dict[str, str], bytes], reason: str) -> None:
    client = FcmClient.from_service_account(fakes.fcm.service_account(),
                                            base_url=fakes.fcm.base_url)
    fakes.fcm.token_script.append(answer)
    try:
        failed = await client.send(FCM_TOKEN, MESSAGE)
        sent = await client.send(FCM_TOKEN, MESSAGE)  # the endpoint is fine again
    finally:
        await client.aclose()
    assert (failed.outcome, failed.reason) == ("retry", reason)
    assert failed.retry_after_s == (30 if answer[0] == 503 else None)
    assert sent.outcome == "sent"


async def test_an_expired_provider_token_is_renewed(fakes: Fakes) -> None:
    client = apns_client(fakes)
    fakes.apns.script[APNS_TOKEN] = [(403, {}, b'{"reason":"ExpiredProviderToken"}')]
    try:
        first = await client.send(APNS_TOKEN, MESSAGE)
        assert (first.outcome, client.tokens_made) == ("retry", 1)
        fakes.apns.provider_tokens.clear()  # the fake's 20-minute rule: not a rotation storm
        second = await client.send(APNS_TOKEN, MESSAGE)
    finally:
        await client.aclose()
    assert (second.outcome, client.tokens_made) == ("sent", 2)


async def test_an_oversized_payload_is_not_sent_and_a_long_collapse_key_is_hashed(
        fakes: Fakes) -> None:
    client = apns_client(fakes)
    big = PushMessage(notification_id=str(uuid.uuid4()), title="t", body="x" * 5000, data={},
                      collapse_key="k" * 100, high_priority=False, ttl_s=60)
    long_key = PushMessage(notification_id=str(uuid.uuid4()), title="t", body="b", data={},
                           collapse_key="firmware:" + "k" * 100, high_priority=False, ttl_s=60)
    try:
        too_big = await client.send(APNS_TOKEN, big)
        hashed = await client.send(APNS_TOKEN, long_key)
    finally:
        await client.aclose()
    assert too_big.outcome == "permanent" and "4096" in too_big.reason
    assert hashed.outcome == "sent"  # a collapse key over 64 bytes is hashed to fit
    [received] = fakes.apns.sent
    assert len(received.headers["apns-collapse-id"]) == 64
    assert received.headers["apns-priority"] == "5"


def test_the_provider_token_is_reused_for_40_minutes() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = pem_private(ec.generate_private_key(ec.SECP256R1()))
    client = ApnsClient(team_id="T", key_id="K", private_key_pem=key, topic="x",
                        http=httpx2.AsyncClient())
    t0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    with clock.frozen(t0):
        first = client.provider_token()
        clock.advance(timedelta(minutes=39))
        assert client.provider_token() == first
        clock.advance(timedelta(minutes=1, seconds=1))
        assert client.provider_token() != first
    assert client.tokens_made == 2


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120
    assert retry_after_s("Fri, 01 May 2026 08:01:30 GMT", now) == 90
    assert retry_after_s("Fri, 01 May 2026 07:00:00 GMT", now) == 0
    assert retry_after_s("999999999", now) == 3600  # capped
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None
