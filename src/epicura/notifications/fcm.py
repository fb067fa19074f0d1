"""Firebase Cloud Messaging, HTTP v1, without the vendor SDK.

The service account's RS256-signed JWT is exchanged at its `token_uri` for an OAuth2 access
token (the JWT-bearer grant), cached until five minutes before it expires; messages go to
`POST {base}/v1/projects/{project}/messages:send`. Errors follow FCM's documented bodies:
`UNREGISTERED` (404), `SENDER_ID_MISMATCH` and an `INVALID_ARGUMENT` about the registration token
mean the token is dead; `QUOTA_EXCEEDED` (429), `UNAVAILABLE` (503) and `INTERNAL` (500) are
retried (after `Retry-After` when given); an `UNAUTHENTICATED` reply drops the cached token
and the send is tried once more with a fresh one.
"""

from __future__ import annotations

import asyncio
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

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_BASE_URL = "https://fcm.googleapis.com"
ASSERTION_LIFETIME_S = 3600
REFRESH_MARGIN_S = 300
TOKEN_DEAD_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
RETRY_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
AUTH_CODES = frozenset({"UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"})
AUTH_RETRY = " (access token refused)"


class FcmConfigError(ValueError):
    pass


class FcmClient:
    def __init__(self, *, project_id: str, client_email: str, private_key: str, token_uri: str,
                 private_key_id: str | None = None, base_url: str = DEFAULT_BASE_URL,
                 http: httpx2.AsyncClient | None = None) -> None:
        self.project_id = project_id
        self.client_email = client_email
        self.private_key = private_key
        self.private_key_id = private_key_id
        self.token_uri = token_uri
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx2.AsyncClient(timeout=SEND_TIMEOUT_S)
        self._access: tuple[str, float] | None = None  # (token, usable until, epoch s)
        self._lock = asyncio.Lock()
        self.token_exchanges = 0

    @classmethod
    def from_service_account(cls, text: str, *, base_url: str = DEFAULT_BASE_URL) -> FcmClient:
        try:
            account = orjson.loads(text)
            return cls(project_id=account["project_id"], client_email=account["client_email"],
                       private_key=account["private_key"], token_uri=account["token_uri"],
                       private_key_id=account.get("private_key_id"), base_url=base_url)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise FcmConfigError("FCM_SERVICE_ACCOUNT is not a service-account JSON") from exc

    async def aclose(self) -> None:
        await self.http.aclose()

    def _assertion(self, now: float) -> str:
        claims = {"iss": self.client_email, "scope": SCOPE, "aud": self.token_uri,
                  "iat": int(now), "exp": int(now) + ASSERTION_LIFETIME_S}
        headers = {"kid": self.private_key_id} if self.private_key_id else None
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=headers)

    async def access_token(self) -> str:
        """The cached OAuth2 access token, exchanged anew when it is near its expiry."""
        async with self._lock:
            now = clock.utcnow().timestamp()
            if self._access is not None and now < self._access[1]:
                return self._access[0]
            reply = await self.http.post(self.token_uri, data={
                "grant_type": GRANT_TYPE, "assertion": self._assertion(now)})
            self.token_exchanges += 1
            body = json_object(reply)
            token, expires_in = body.get("access_token"), body.get("expires_in")
            if reply.status_code != 200 or not isinstance(token, str) or \
                    not isinstance(expires_in, int | float):
                raise TokenExchangeFailed(reply.status_code, str(body.get("error") or "")[:100],
                                          retry_after_s(reply.headers.get("retry-after")))
            self._access = (token, now + float(expires_in) - REFRESH_MARGIN_S)
            return token

    def forget_access_token(self) -> None:
        self._access = None

    def body(self, token: str, message: PushMessage) -> dict[str, Any]:
        return {"message": {
            "token": token,
            "notification": {"title": message.title, "body": message.body},
            "data": {**message.data, "notification_id": message.notification_id},
            "android": {
                "collapse_key": message.collapse_key[:100],
                "priority": "HIGH" if message.high_priority else "NORMAL",
                "ttl": f"{message.ttl_s}s",
                "notification": {"tag": message.collapse_key[:100]},
            },
        }}

    async def send(self, token: str, message: PushMessage) -> SendResult:
        result = await self._send_once(token, message)
        if result.outcome == "retry" and result.reason.endswith(AUTH_RETRY):
            # The access token was refused (revoked, expired early): exchange a new one once.
            result = await self._send_once(token, message)
        return result

    async def _send_once(self, token: str, message: PushMessage) -> SendResult:
        try:
            access = await self.access_token()
            reply = await self.http.post(
                f"{self.base_url}/v1/projects/{self.project_id}/messages:send",
                headers={"Authorization": f"Bearer {access}",
                         "Content-Type": "application/json; charset=UTF-8"},
                content=orjson.dumps(self.body(token, message)))
        except TokenExchangeFailed as exc:
            if exc.status >= 500 or exc.status == 429:
                return SendResult("retry", f"oauth2 {exc.status}", exc.retry_after_s, exc.status)
            # A refused assertion is a configuration problem: retried with backoff, and dead
            # letters say why if nobody fixes it.
            return SendResult("retry", f"oauth2 refused ({exc.status} {exc.error})",
                              None, exc.status)
        except httpx2.HTTPError as exc:
            return SendResult("retry", f"transport: {type(exc).__name__}")
        return self.classify(reply)

    def classify(self, reply: httpx2.Response) -> SendResult:
        status = reply.status_code
        if status == 200:
            return SendResult("sent", status=status)
        error = json_object(reply).get("error")
        error = error if isinstance(error, dict) else {}
        code = _error_code(error)
        message = str(error.get("message") or "")[:200]
        after = retry_after_s(reply.headers.get("retry-after"))
        reason = f"{status} {code or 'no error code'}"
        if code in TOKEN_DEAD_CODES or status == 404:
            return SendResult("token_invalid", reason, status=status)
        if code == "INVALID_ARGUMENT" and "token" in message.lower():
            return SendResult("token_invalid", reason, status=status)
        if code in AUTH_CODES or status == 401:
            self.forget_access_token()
            return SendResult("retry", f"{reason}{AUTH_RETRY}", after, status)
        if code in RETRY_CODES or status == 429 or status >= 500:
            return SendResult("retry", reason, after, status)
        return SendResult("permanent", f"{reason}: {message}", status=status)


class TokenExchangeFailed(Exception):
    def __init__(self, status: int, error: str, retry_after: float | None) -> None:
        super().__init__(f"token exchange {status} {error}")
        self.status, self.error, self.retry_after_s = status, error, retry_after


def _error_code(error: dict[str, Any]) -> str:
    """The FcmError detail's `errorCode`, else the canonical `status`."""
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("FcmError"):
            code = detail.get("errorCode")
            if isinstance(code, str):
                return code
    status = error.get("status")
    return status if isinstance(status, str) else ""
