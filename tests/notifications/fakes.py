"""A local FCM server on a real socket that checks requests the way Google documents and
answers with its error bodies (tests script answers per device token), and what the local APNs
(fake_apns.py) shares with it.

FCM: the OAuth2 token endpoint verifies the service account's RS256 JWT assertion (signature,
`aud`, `iss`, `scope`, lifetime) and hands out access tokens; `messages:send` checks the bearer
token, the project, the message shape (one target, string data values, Android priority, TTL)
and answers 200 `{"name"}` or an `{"error": {code, message, status, details: [FcmError]}}`.
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


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost (it is its own CA) and its key (the APNs's)."""
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
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Serve `app` on a free local port in this event loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async def started() -> bool:
        return server.started

    try:
        await wait_until(started, timeout_s=10, message="the fake provider to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


def trust(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))
