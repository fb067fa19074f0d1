"""The outermost ASGI layer: request ids, access log, metrics, body limits, security headers.

Written as plain ASGI (not `BaseHTTPMiddleware`) so that it adds no task hop per request and
streams bodies untouched.
"""

from __future__ import annotations

import re
import time
from collections.abc import MutableMapping
from typing import Any

import structlog
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicura.kit import metrics
from epicura.kit.errors import PROBLEM_MEDIA_TYPE, is_dependency_down
from epicura.kit.ids import uuid7
from epicura.kit.logging import redact_text, request_id_var

log = structlog.get_logger("epicura.access")
error_log = structlog.get_logger("epicura.errors")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class BodyTooLargeError(HTTPException):
    """Raised by `receive` once a body passes the cap. An `HTTPException`, so the framework
    answers 413 even when it is reading the body (it turns other errors there into 400)."""

    def __init__(self) -> None:
        super().__init__(413, "The request body is too large")


def header_value(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def problem_messages(
    status: int, code: str, title: str, request_id: str
) -> tuple[Message, Message]:
    body = (
        f'{{"type":"about:blank","title":"{title}","status":{status},"code":"{code}"}}'
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_json_bytes: int,
        max_upload_bytes: int,
        hsts: bool = False,
        large_uploads: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes
        # Exact paths whose multipart bodies may be larger (a streamed firmware upload).
        self.large_uploads = large_uploads or {}
        self.hsts = hsts
        self._templates: dict[int, str] = {}

    def _cap(self, scope: Scope) -> int:
        content_type = header_value(scope, b"content-type") or ""
        if content_type.startswith("multipart/") or content_type.startswith("image/"):
            return self.large_uploads.get(scope["path"], self.max_upload_bytes)
        return self.max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header_value(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else str(uuid7())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        cap = self._cap(scope)
        try:
            declared = header_value(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                for message in problem_messages(
                    413, "body_too_large", "The request body is too large", request_id
                ):
                    await send(message)
                status_holder["status"] = 413
                return
            await self._call_app(scope, receive, send, request_id, cap, status_holder)
        finally:
            self._observe(scope, status_holder["status"], time.perf_counter() - started)
            request_id_var.reset(token)

    async def _call_app(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        cap: int,
        status_holder: dict[str, Any],
    ) -> None:
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLargeError()
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                if not scope["path"].startswith(("/docs", "/admin")):
                    headers.append(API_CSP)
                if self.hsts:
                    headers.append(HSTS)
                message = {**message, "headers": headers}
            await send(message)

        metrics.http_in_flight.inc()
        try:
            await self.app(scope, counted_receive, send_with_headers)
        except BodyTooLargeError:
            if status_holder["started"]:
                raise
            status_holder["status"] = 413
            for message in problem_messages(
                413, "body_too_large", "The request body is too large", request_id
            ):
                await send(message)
        except Exception as exc:
            # Answered here rather than by the framework's last-resort handler, which runs outside
            # this layer: the log line and the reply then carry the request id and the headers.
            if status_holder["started"]:
                raise
            if is_dependency_down(exc):
                error_log.warning("dependency_unavailable", error=type(exc).__name__)
                start, body = problem_messages(
                    503,
                    "dependency_unavailable",
                    "A service this request needs is unreachable",
                    request_id,
                )
                start["headers"].append((b"retry-after", b"5"))
            else:
                error_log.error("unhandled_error", exc_info=True)
                start, body = problem_messages(
                    500, "internal_error", "Internal server error", request_id
                )
            status_holder["status"] = start["status"]
            start["headers"] = [h for h in start["headers"] if h[0] != b"x-request-id"]
            await send_with_headers(start)
            await send_with_headers(body)
        finally:
            metrics.http_in_flight.dec()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = request_id_var.set(str(uuid7()))
        try:
            await self.app(scope, receive, send)
        finally:
            request_id_var.reset(token)

    def _route_template(self, scope: MutableMapping[str, Any]) -> str:
        """The matched route's full path template (`/api/v1/admin/users/{user_id}`): the route in
        the scope knows only its path inside the router that was included under a prefix."""
        route = scope.get("route")
        if route is None:
            return "unmatched"
        template = self._templates.get(id(route))
        if template is None:
            template = getattr(route, "path", None) or "unmatched"
            router = getattr(scope.get("app"), "router", None)
            for context in iter_route_contexts(getattr(router, "routes", [])):
                if context.original_route is route:
                    template = context.path_format or context.path or template
                    break
            self._templates[id(route)] = template
        return template

    def _observe(self, scope: MutableMapping[str, Any], status: int, elapsed: float) -> None:
        route = self._route_template(scope)
        method = scope.get("method", "")
        metrics.http_requests.labels(method, route, str(status)).inc()
        metrics.http_latency.labels(method, route).observe(elapsed)
        if route in ("/healthz", "/readyz", "/metrics"):
            return
        query = scope.get("query_string", b"").decode("latin-1")
        log.info(
            "request",
            method=method,
            path=scope.get("path"),
            query=redact_text(query) if query else None,
            route=route,
            status=status,
            ms=round(elapsed * 1000, 2),
        )
