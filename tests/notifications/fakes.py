"""Local FCM and APNs servers on real sockets that check requests the way the providers
document and answer with their error bodies; tests script answers per device token.

FCM: the OAuth2 token endpoint verifies the service account's RS256 JWT assertion (signature,
`aud`, `iss`, `scope`, lifetime) and hands out access tokens; `messages:send` checks the bearer
token, the project, the message shape (one target, string data values, Android priority, TTL)
and answers 200 `{"name"}` or an `{"error": {code, message, status, details: [FcmError]}}`.

APNs: TLS (a self-signed certificate for 127.0.0.1), HTTP/2 when the client offers it, the ES256
provider token (`kid`, `iss`, age under an hour, not renewed more often than every 20 minutes),
the `apns-*` headers and the payload size; answers 200 with `apns-id` or `{"reason"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import re
import secrets
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.bridge.ingest_support import wait_until

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
Scripted = tuple[int, dict[str, str], bytes]


def pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@dataclass
class Received:
    token: str
    headers: dict[str, str]
    body: dict[str, Any]
    http_version: str


@dataclass
class FakeFcm:
    project_id: str = "epicura-test"
    client_email: str = "push@epicura-test.iam.gserviceaccount.com"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    base_url: str = ""
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch s)
    exchanges: int = 0
    refused_assertions: int = 0
    sent: list[Received] = field(default_factory=list)
    unregistered: set[str] = field(default_factory=set)
    script: dict[str, list[Scripted]] = field(default_factory=dict)
    token_script: list[Scripted] = field(default_factory=list)  # answers of /token, in order
    # When set, a send is answered only once `release` is set (`arrived` says one is waiting).
    release: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def service_account(self) -> str:
        return orjson.dumps({
            "type": "service_account", "project_id": self.project_id,
            "private_key_id": "k1", "private_key": pem_private(self.key),
            "client_email": self.client_email, "token_uri": self.token_uri,
        }).decode()

    def sent_to(self, token: str) -> list[Received]:
        return [r for r in self.sent if r.token == token]

    async def token(self, request: Request) -> Response:
        if self.token_script:
            status, headers, body = self.token_script.pop(0)
            return Response(body, status, headers=headers, media_type="application/json")
        form = await request.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        try:
            # Some clock skew is tolerated, as Google does.
            claims = jwt.decode(str(form.get("assertion")), self.key.public_key(),
                                algorithms=["RS256"], audience=self.token_uri, leeway=300,
                                options={"require": ["iss", "aud", "iat", "exp", "scope"]})
        except jwt.PyJWTError as exc:
            self.refused_assertions += 1
            return JSONResponse({"error": "invalid_grant", "error_description": str(exc)}, 400)
        if claims["iss"] != self.client_email or FCM_SCOPE not in str(claims["scope"]).split() \
                or claims["exp"] - claims["iat"] > 3600:
            self.refused_assertions += 1
            return JSONResponse({"error": "invalid_grant"}, 400)
        self.exchanges += 1
        access = "ya29." + secrets.token_urlsafe(24)
        self.access_tokens[access] = time.time() + 3599
        return JSONResponse({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})

    @staticmethod
    def error(status: int, canonical: str, message: str, code: str | None = None) -> Response:
        body: dict[str, Any] = {"code": status, "message": message, "status": canonical}
        if code:
            body["details"] = [{"@type": FCM_ERROR_TYPE, "errorCode": code}]
        return JSONResponse({"error": body}, status)

    async def send(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        access = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self.access_tokens.get(access, 0) < time.time():
            return self.error(401, "UNAUTHENTICATED",
                              "Request had invalid authentication credentials.")
        if request.path_params["project"] != self.project_id:
            return self.error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
        try:
            message = orjson.loads(await request.body())["message"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        targets = [k for k in ("token", "topic", "condition") if k in message]
        if len(targets) != 1:
            return self.error(400, "INVALID_ARGUMENT", "Exactly one target", "INVALID_ARGUMENT")
        data = message.get("data", {})
        if not all(isinstance(v, str) for v in data.values()):
            return self.error(400, "INVALID_ARGUMENT", "data values must be strings",
                              "INVALID_ARGUMENT")
        android = message.get("android", {})
        if android.get("priority", "NORMAL") not in ("NORMAL", "HIGH") or \
                not re.fullmatch(r"\d+(\.\d{1,9})?s", android.get("ttl", "0s")):
            return self.error(400, "INVALID_ARGUMENT", "Invalid android config",
                              "INVALID_ARGUMENT")
        token = message.get("token", "")
        if self.release is not None:
            self.arrived.set()
            await self.release.wait()
        if self.script.get(token):
            status, headers, body = self.script[token].pop(0)
            return Response(body, status, headers=headers, media_type="application/json")
        if token in self.unregistered:
            return self.error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        self.sent.append(Received(token, dict(request.headers), message,
                                  request.scope.get("http_version", "")))
        return JSONResponse({"name": f"projects/{self.project_id}/messages/{len(self.sent)}"})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/token", self.token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", self.send, methods=["POST"]),
        ])


@dataclass
class FakeApns:
    team_id: str = "TEAM123456"
    key_id: str = "KEY1234567"
    topic: str = "cloud.epicura.app"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    base_url: str = ""
    sent: list[Received] = field(default_factory=list)
    unregistered: set[str] = field(default_factory=set)
    script: dict[str, list[Scripted]] = field(default_factory=dict)
    provider_tokens: list[tuple[str, float]] = field(default_factory=list)  # (jwt, first seen)

    def sent_to(self, token: str) -> list[Received]:
        return [r for r in self.sent if r.token == token]

    @staticmethod
    def reason(status: int, reason: str, **extra: Any) -> Response:
        return JSONResponse({"reason": reason, **extra}, status)

    def _check_provider_token(self, auth: str) -> Response | None:
        if not auth.startswith("bearer "):
            return self.reason(403, "MissingProviderToken")
        encoded = auth.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(encoded)
            claims = jwt.decode(encoded, self.key.public_key(), algorithms=["ES256"],
                                options={"require": ["iss", "iat"]})
        except jwt.PyJWTError:
            return self.reason(403, "InvalidProviderToken")
        if header.get("kid") != self.key_id or claims["iss"] != self.team_id:
            return self.reason(403, "InvalidProviderToken")
        if time.time() - claims["iat"] > 3600:
            return self.reason(403, "ExpiredProviderToken")
        if not any(seen == encoded for seen, _ in self.provider_tokens):
            if self.provider_tokens and time.time() - self.provider_tokens[-1][1] < 20 * 60:
                return self.reason(429, "TooManyProviderTokenUpdates")
            self.provider_tokens.append((encoded, time.time()))
        return None

    async def push(self, request: Request) -> Response:
        token = request.path_params["token"]
        refused = self._check_provider_token(request.headers.get("authorization", ""))
        if refused is not None:
            return refused
        h = request.headers
        if "apns-topic" not in h:
            return self.reason(400, "MissingTopic")
        if h["apns-topic"] != self.topic:
            return self.reason(400, "TopicDisallowed")
        if h.get("apns-push-type") not in ("alert", "background", "voip", "liveactivity"):
            return self.reason(400, "InvalidPushType")
        if h.get("apns-priority", "10") not in ("5", "10"):
            return self.reason(400, "BadPriority")
        if len(h.get("apns-collapse-id", "").encode()) > 64:
            return self.reason(400, "BadCollapseId")
        if not h.get("apns-expiration", "0").isdigit():
            return self.reason(400, "BadExpirationDate")
        try:
            apns_id = str(uuid.UUID(h.get("apns-id", str(uuid.uuid4()))))
        except ValueError:
            return self.reason(400, "BadMessageId")
        if not re.fullmatch(r"[0-9a-f]{64}", token):
            return self.reason(400, "BadDeviceToken")
        raw = await request.body()
        if len(raw) > 4096:
            return self.reason(413, "PayloadTooLarge")
        try:
            body = orjson.loads(raw)
            assert isinstance(body, dict) and "aps" in body
        except (orjson.JSONDecodeError, AssertionError):
            return self.reason(400, "PayloadEmpty")
        if self.script.get(token):
            status, headers, content = self.script[token].pop(0)
            return Response(content, status, headers=headers, media_type="application/json")
        if token in self.unregistered:
            return self.reason(410, "Unregistered", timestamp=int(time.time() * 1000))
        self.sent.append(Received(token, dict(h), body, request.scope.get("http_version", "")))
        return Response(status_code=200, headers={"apns-id": apns_id})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/3/device/{token}", self.push, methods=["POST"])])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost (it is its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apns.local.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "apns-cert.pem", directory / "apns-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_text(pem_private(key))
    return cert_path, key_path


@contextlib.asynccontextmanager
async def serving(app: Starlette, *, tls: tuple[Path, Path] | None = None) -> AsyncIterator[str]:
    """Serve `app` on a free local port in this event loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", ws="none", access_log=False,
        ssl_certfile=str(tls[0]) if tls else None, ssl_keyfile=str(tls[1]) if tls else None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async def started() -> bool:
        return server.started

    try:
        await wait_until(started, timeout_s=10, message="the fake provider to listen")
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


def trust(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))
