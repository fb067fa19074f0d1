"""What the push providers share: the message, the outcome of a send, `Retry-After`, and the
per-process clients (one kept connection per provider) built from the settings."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
from pydantic import SecretStr

from epicura.kit import clock

if TYPE_CHECKING:
    import httpx2

    from epicura.kit.runtime import Runtime

PROVIDERS_KEY = "push_providers"
SEND_TIMEOUT_S = 10.0
MAX_RETRY_AFTER_S = 3600.0

Outcome = Literal["sent", "token_invalid", "retry", "permanent"]


@dataclass(frozen=True)
class PushMessage:
    notification_id: str
    title: str
    body: str
    data: dict[str, str]  # string values only (FCM's rule; kept for both)
    collapse_key: str
    high_priority: bool
    ttl_s: int
    urgent: bool = False


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reason: str = ""
    retry_after_s: float | None = None
    status: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


class PushClient(Protocol):
    async def send(self, token: str, message: PushMessage) -> SendResult: ...

    async def aclose(self) -> None: ...


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delta = (moment - (now or clock.utcnow())).total_seconds()
    return min(max(0.0, delta), MAX_RETRY_AFTER_S)


def json_object(reply: httpx2.Response) -> dict[str, Any]:
    """A provider reply's JSON object, or {} for anything else (an HTML error page, garbage):
    their bodies are not trusted to be what the documentation says."""
    try:
        body = orjson.loads(reply.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def secret_text(secret: SecretStr) -> str:
    """A secret given inline, or the path of a file holding it."""
    value = secret.get_secret_value().strip()
    if value.startswith(("{", "-----BEGIN")):
        return value
    return Path(value).read_text(encoding="utf-8")


@dataclass
class Providers:
    fcm: PushClient | None
    apns: PushClient | None

    def for_platform(self, platform: str) -> PushClient | None:
        return self.fcm if platform == "fcm" else self.apns if platform == "apns" else None

    async def aclose(self) -> None:
        for client in (self.fcm, self.apns):
            if client is not None:
                await client.aclose()


def for_runtime(rt: Runtime) -> Providers:
    """This process's provider clients, built on first use from the settings (a provider whose
    credentials are not configured is None: its tokens get no pushes)."""
    found = rt.extras.get(PROVIDERS_KEY)
    if isinstance(found, Providers):
        return found
    from epicura.notifications.apns import ApnsClient
    from epicura.notifications.fcm import FcmClient

    settings = rt.settings
    fcm = apns = None
    if settings.fcm_service_account is not None:
        fcm = FcmClient.from_service_account(secret_text(settings.fcm_service_account),
                                             base_url=settings.fcm_base_url)
    if (settings.apns_private_key is not None and settings.apns_key_id and settings.apns_team_id
            and settings.apns_topic):
        apns = ApnsClient(
            team_id=settings.apns_team_id, key_id=settings.apns_key_id,
            private_key_pem=secret_text(settings.apns_private_key), topic=settings.apns_topic,
            base_url=settings.apns_base_url,
            verify=ssl.create_default_context(cafile=str(settings.apns_ca_file))
            if settings.apns_ca_file else True,
        )
    providers = rt.extras[PROVIDERS_KEY] = Providers(fcm=fcm, apns=apns)
    return providers


async def close(rt: Runtime) -> None:
    found = rt.extras.pop(PROVIDERS_KEY, None)
    if isinstance(found, Providers):
        await found.aclose()
