"""`Idempotency-Key` on POST: a repeat with the same key and body gets the first response.

Keys are scoped to the caller (its credentials, else its address) and the path, kept 24 h in
Redis. The same key with another body is 422; a repeat while the first is still running is 409.
Routes whose responses carry fresh secrets (tokens, device credentials) are excluded: replaying
them would mean storing those secrets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicura.kit.http import header_value, problem_messages
from epicura.kit.kv import Keys
from epicura.kit.logging import request_id_var

log = structlog.get_logger("epicura.idempotency")

TTL_S = 24 * 3600
IN_PROGRESS_TTL_S = 60
MAX_KEY_LENGTH = 255


class IdempotencyMiddleware:
    def __init__(
        self, app: ASGIApp, *, redis: Redis, keys: Keys, excluded_prefixes: Sequence[str]
    ) -> None:
        self.app = app
        self.redis = redis
        self.keys = keys
        self.excluded = tuple(excluded_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = header_value(scope, b"idempotency-key") if scope["type"] == "http" else None
        if (
            key is None
            or scope["method"] != "POST"
            or not scope["path"].startswith("/api/")
            or scope["path"].startswith(self.excluded)
        ):
            await self.app(scope, receive, send)
            return
        await self._handle(scope, receive, send, key)

    async def _reply(self, send: Send, status: int, code: str, title: str) -> None:
        for message in problem_messages(status, code, title, request_id_var.get() or ""):
            await send(message)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            await self._reply(
                send, 400, "invalid_idempotency_key", "Idempotency-Key is 1–255 characters"
            )
            return
        body = await _read_body(receive)
        caller = (
            header_value(scope, b"authorization") or f"anon:{(scope.get('client') or ('',))[0]}"
        )
        scope_hash = hashlib.sha256(f"{caller}\n{scope['path']}\n{key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(body).hexdigest()
        redis_key = self.keys("idem", scope_hash)
        try:
            stored = await self.redis.get(redis_key)
            if stored is None:
                marker = orjson.dumps({"state": "running", "fingerprint": fingerprint})
                if await self.redis.set(redis_key, marker, nx=True, ex=IN_PROGRESS_TTL_S):
                    await self._run_and_store(scope, send, body, redis_key, fingerprint)
                    return
                stored = await self.redis.get(redis_key)
        except RedisError as exc:
            log.warning("idempotency_store_down", error=type(exc).__name__)
            await self._reply(send, 503, "dependency_unavailable", "Idempotency store unavailable")
            return
        await self._replay(send, stored, fingerprint)

    async def _replay(self, send: Send, stored: bytes | str | None, fingerprint: str) -> None:
        record: dict[str, Any] = (
            orjson.loads(stored) if stored else {"state": "running", "fingerprint": fingerprint}
        )
        if record["fingerprint"] != fingerprint:
            await self._reply(
                send,
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with another request body",
            )
        elif record["state"] == "running":
            await self._reply(
                send,
                409,
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still in progress",
            )
        else:
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
            headers.append((b"idempotent-replayed", b"true"))
            await send(
                {"type": "http.response.start", "status": record["status"], "headers": headers}
            )
            await send({"type": "http.response.body", "body": record["body"].encode("latin-1")})

    async def _run_and_store(
        self, scope: Scope, send: Send, body: bytes, redis_key: str, fingerprint: str
    ) -> None:
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            await self._store(redis_key, fingerprint, status, headers, b"".join(chunks))

    async def _store(
        self,
        redis_key: str,
        fingerprint: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        try:
            if status >= 500:
                await self.redis.delete(redis_key)
                return
            kept = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in headers
                if k.lower() not in (b"x-request-id", b"set-cookie")
            ]
            record = {
                "state": "done",
                "fingerprint": fingerprint,
                "status": status,
                "headers": kept,
                "body": body.decode("latin-1"),
            }
            await self.redis.set(redis_key, orjson.dumps(record), ex=TTL_S)
        except RedisError as exc:
            log.warning("idempotency_store_down", error=type(exc).__name__)


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)
