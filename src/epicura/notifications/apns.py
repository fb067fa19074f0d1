"""Apple Push Notification service over HTTP/2, without the vendor SDK.

One kept HTTP/2 connection per process (an `httpx2.AsyncClient` that offers only "h2" in ALPN:
Apple accepts nothing else, and concurrent pushes are streams multiplexed on it); each request
carries an ES256 provider token (`kid` = key id, `iss` = team id) that is reused for 40 minutes —
Apple refuses refreshing more often than every 20 minutes (`TooManyProviderTokenUpdates`) and
tokens older than an hour (`ExpiredProviderToken`). `POST /3/device/{token}` with `apns-topic`,
`apns-push-type`, `apns-priority`, `apns-expiration`, `apns-collapse-id` and `apns-id`.
410 `Unregistered` and 400 `BadDeviceToken` / `DeviceTokenNotForTopic` mean the token is dead;
429 and 5xx are retried (after `Retry-After` when given); an expired provider token is renewed.
"""

from __future__ import annotations

import hashlib
import ssl
from typing import Any

import httpx2
import jwt
import orjson

from epicura.kit import clock
from epicura.notifications.providers import (
    SEND_TIMEOUT_S,
    PushMessage,
    SendResult,
    json_object,
    retry_after_s,
)

DEFAULT_BASE_URL = "https://api.push.apple.com"
TOKEN_REUSE_S = 40 * 60  # within Apple's 20–60 minutes
MAX_COLLAPSE_ID_BYTES = 64
MAX_PAYLOAD_BYTES = 4096
TOKEN_DEAD_REASONS = frozenset({"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"})


class ApnsClient:
    def __init__(self, *, team_id: str, key_id: str, private_key_pem: str, topic: str,
                 base_url: str = DEFAULT_BASE_URL,
                 verify: ssl.SSLContext | str | bool = True,
                 http: httpx2.AsyncClient | None = None) -> None:
        self.team_id = team_id
        self.key_id = key_id
        self.private_key = private_key_pem
        self.topic = topic
        self.base_url = base_url.rstrip("/")
        # One connection, kept: APNs wants long-lived HTTP/2 connections, not one per push
        # (and HTTP/2 only: no HTTP/1.1 fallback that Apple would refuse anyway).
        self.http = http or httpx2.AsyncClient(
            http1=False, http2=True, verify=verify, timeout=SEND_TIMEOUT_S,
            limits=httpx2.Limits(max_connections=1, keepalive_expiry=3600))
        self._token: tuple[str, float] | None = None  # (jwt, issued at)
        self.tokens_made = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    def provider_token(self) -> str:
        now = clock.utcnow().timestamp()
        if self._token is None or now - self._token[1] >= TOKEN_REUSE_S:
            encoded = jwt.encode({"iss": self.team_id, "iat": int(now)}, self.private_key,
                                 algorithm="ES256", headers={"kid": self.key_id})
            self._token = (encoded, now)
            self.tokens_made += 1
        return self._token[0]

    def headers(self, message: PushMessage) -> dict[str, str]:
        collapse = message.collapse_key
        if len(collapse.encode()) > MAX_COLLAPSE_ID_BYTES:
            collapse = hashlib.sha256(collapse.encode()).hexdigest()[:MAX_COLLAPSE_ID_BYTES]
        expires = int(clock.utcnow().timestamp()) + message.ttl_s
        return {
            "authorization": f"bearer {self.provider_token()}",
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            "apns-priority": "10" if message.high_priority else "5",
            "apns-expiration": str(expires),
            "apns-collapse-id": collapse,
            "apns-id": message.notification_id,
            "content-type": "application/json",
        }

    def payload(self, message: PushMessage) -> dict[str, Any]:
        aps: dict[str, Any] = {"alert": {"title": message.title, "body": message.body},
                               "sound": "default", "thread-id": message.collapse_key[:64]}
        if message.urgent:
            aps["interruption-level"] = "time-sensitive"
        return {"aps": aps, "notification_id": message.notification_id, "data": message.data}

    async def send(self, token: str, message: PushMessage) -> SendResult:
        body = orjson.dumps(self.payload(message))
        if len(body) > MAX_PAYLOAD_BYTES:
            return SendResult("permanent", f"payload of {len(body)} bytes is over 4096")
        try:
            reply = await self.http.post(f"{self.base_url}/3/device/{token}",
                                         headers=self.headers(message), content=body)
        except httpx2.HTTPError as exc:
            return SendResult("retry", f"transport: {type(exc).__name__}")
        return self.classify(reply)

    def classify(self, reply: httpx2.Response) -> SendResult:
        status = reply.status_code
        if status == 200:
            return SendResult("sent", status=status,
                              extra={"apns-id": reply.headers.get("apns-id", "")})
        reason = str(json_object(reply).get("reason") or "")
        text = f"{status} {reason or 'no reason'}"
        after = retry_after_s(reply.headers.get("retry-after"))
        if status == 410 or reason in TOKEN_DEAD_REASONS:
            return SendResult("token_invalid", text, status=status)
        if reason == "ExpiredProviderToken":
            self._token = None  # make a new one for the retry (an invalid one is configuration)
            return SendResult("retry", text, after, status)
        if status == 429 or status >= 500:
            return SendResult("retry", text, after, status)
        return SendResult("permanent", text, status=status)
