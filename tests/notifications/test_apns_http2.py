"""APNs over real HTTP/2: many pushes, sequential and concurrent, share one kept connection and
one provider token; the local APNs speaks only HTTP/2 and refuses what Apple refuses."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx2
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from epicura.notifications.providers import PushMessage
from tests.notifications.conftest import APNS_TOKEN, Fakes, apns_client
from tests.notifications.fakes import trust

pytestmark = pytest.mark.anyio


def message(n: int) -> PushMessage:
    return PushMessage(notification_id=str(uuid.uuid4()), title="Ready", body=f"Dish {n}",
                       data={"n": str(n)}, collapse_key=f"k{n}", high_priority=True, ttl_s=60)


async def test_pushes_share_one_http2_connection_and_one_provider_token(fakes: Fakes) -> None:
    client = apns_client(fakes)
    try:
        sequential = [await client.send(APNS_TOKEN, message(n)) for n in range(3)]
        concurrent = await asyncio.gather(*(client.send(APNS_TOKEN, message(n))
                                            for n in range(3, 8)))
    finally:
        await client.aclose()
    assert [r.outcome for r in (*sequential, *concurrent)] == ["sent"] * 8
    received = fakes.apns.sent_to(APNS_TOKEN)
    assert len(received) == 8
    assert {r.http_version for r in received} == {"2"}
    assert fakes.apns.connections == 1  # kept, and the concurrent ones are multiplexed on it
    assert client.tokens_made == 1  # signed once, not per push
    assert len(fakes.apns.provider_tokens) == 1
    assert len({r.headers["authorization"] for r in received}) == 1


async def test_a_client_without_http2_is_refused(fakes: Fakes) -> None:
    async with httpx2.AsyncClient(verify=trust(fakes.ca_file)) as http1:  # ALPN http/1.1 only
        with pytest.raises(httpx2.HTTPError):
            await http1.post(f"{fakes.apns.base_url}/3/device/{APNS_TOKEN}", content=b"{}")
    assert (fakes.apns.connections, fakes.apns.refused_connections) == (0, 1)
    assert fakes.apns.sent == []


PAYLOAD = orjson.dumps({"aps": {"alert": {"title": "t", "body": "b"}}})


def provider_token(fakes: Fakes, key: ec.EllipticCurvePrivateKey | None = None) -> str:
    return jwt.encode({"iss": fakes.apns.team_id, "iat": int(time.time())},
                      key or fakes.apns.key, algorithm="ES256",
                      headers={"kid": fakes.apns.key_id})


def good_headers(fakes: Fakes, changes: dict[str, str | None]) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "authorization": f"bearer {provider_token(fakes)}", "apns-topic": fakes.apns.topic,
        "apns-push-type": "alert", "apns-priority": "10", **changes}
    return {k: v for k, v in headers.items() if v is not None}


@pytest.mark.parametrize(("case", "expected"), [
    ({"method": "GET"}, (405, "MethodNotAllowed")),
    ({"path": "/3/devices/" + APNS_TOKEN}, (404, "BadPath")),
    ({"path": "/3/device/not-hex"}, (400, "BadDeviceToken")),
    ({"headers": {"authorization": None}}, (403, "MissingProviderToken")),
    ({"other_key": True}, (403, "InvalidProviderToken")),
    ({"headers": {"apns-topic": None}}, (400, "MissingTopic")),
    ({"headers": {"apns-push-type": None}}, (400, "InvalidPushType")),
    ({"headers": {"apns-priority": "7"}}, (400, "BadPriority")),
    ({"content": b'{"aps": {"alert": "' + b"x" * 4100 + b'"}}'}, (413, "PayloadTooLarge")),
    ({"content": b"[]"}, (400, "PayloadEmpty")),
    ({"unregistered": True}, (410, "Unregistered")),
])
async def test_the_local_apns_checks_what_apple_checks(
        fakes: Fakes, case: dict[str, Any], expected: tuple[int, str]) -> None:
    headers = good_headers(fakes, case.get("headers", {}))
    if case.get("other_key"):  # signed by a key Apple does not know under this key id
        other = ec.generate_private_key(ec.SECP256R1())
        headers["authorization"] = f"bearer {provider_token(fakes, other)}"
    if case.get("unregistered"):
        fakes.apns.unregistered.add(APNS_TOKEN)
    async with httpx2.AsyncClient(http1=False, http2=True,
                                  verify=trust(fakes.ca_file)) as http:
        path = case.get("path", f"/3/device/{APNS_TOKEN}")
        reply = await http.request(case.get("method", "POST"), fakes.apns.base_url + path,
                                   headers=headers, content=case.get("content", PAYLOAD))
    assert reply.http_version == "HTTP/2"
    body = reply.json()
    assert (reply.status_code, body["reason"]) == expected
    assert ("timestamp" in body) == (expected[0] == 410)
    assert fakes.apns.sent == []
