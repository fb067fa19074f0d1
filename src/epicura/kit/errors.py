"""Problem details (RFC 9457) for every failure, each with a stable machine-readable `code`.

Business errors are exceptions that carry their status and code; one set of handlers renders
them, the framework's own 404/405/422 and any unhandled error (a generic 500, logged with the
request id).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

log = structlog.get_logger("epicura.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    # Set on domain violations that name a place and a bound (e.g. a step outside a profile).
    step: int | None = None
    field: str | None = None
    value: Any = None
    limit: Any = None
    profile: str | None = None


class Problem(BaseModel):
    """The body of every error response."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    errors: list[ErrorItem] | None = None


class ProblemError(Exception):
    """Base of every business error; subclasses fix `status`, `code` and `title`."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    # True for errors whose transaction must still commit (e.g. the audit record of a failure).
    keeps_changes: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[ErrorItem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = headers or {}


class BadRequest(ProblemError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class MalformedBody(ProblemError):
    status = 400
    code = "malformed_body"
    title = "The request body is not valid JSON"


class Unauthorized(ProblemError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(ProblemError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(ProblemError):
    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(ProblemError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class Conflict(ProblemError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Gone(ProblemError):
    status = 410
    code = "gone"
    title = "Gone"


class PreconditionFailed(ProblemError):
    status = 412
    code = "version_conflict"
    title = "The resource has changed (ETag mismatch)"


class BodyTooLarge(ProblemError):
    status = 413
    code = "body_too_large"
    title = "The request body is too large"


class UnsupportedMediaType(ProblemError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class ValidationFailed(ProblemError):
    status = 422
    code = "validation_failed"
    title = "The request is not valid"


class PreconditionRequired(ProblemError):
    status = 428
    code = "if_match_required"
    title = "If-Match is required"


class DependencyUnavailable(ProblemError):
    status = 503
    code = "dependency_unavailable"
    title = "A dependency is unavailable"


class RateLimited(ProblemError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after_s: float, detail: str | None = None) -> None:
        self.retry_after_s = max(1, int(retry_after_s + 0.999))
        super().__init__(detail, headers={"Retry-After": str(self.retry_after_s)})


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    errors: Sequence[ErrorItem] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    items = list(errors) if errors else None
    body = Problem(title=title, status=status, detail=detail, code=code, errors=items)
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def render(exc: ProblemError) -> Response:
    if exc.status == 503 and "Retry-After" not in exc.headers:
        exc.headers["Retry-After"] = "5"
    return problem_response(
        exc.status, exc.code, exc.title, exc.detail, errors=exc.errors, headers=exc.headers
    )


_FRAMEWORK_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("body_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


# What FastAPI answers when reading the JSON body fails other than by a syntax error.
_UNPARSABLE_BODY = "There was an error parsing the body"


def _validation_items(exc: RequestValidationError) -> list[ErrorItem]:
    items = []
    for err in exc.errors():
        loc = [part if isinstance(part, int) else str(part) for part in err.get("loc", ())]
        items.append(ErrorItem(loc=loc, msg=str(err.get("msg", "")), type=str(err.get("type", ""))))
    return items


def _is_malformed_json(exc: RequestValidationError) -> bool:
    return any(err.get("type") == "json_invalid" for err in exc.errors())


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path: the router's own 405 names only the first
    route's, but one path often has several routes (GET, PATCH, DELETE)."""
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.router.routes):
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(request.scope["path"]):
            methods.update(context.methods or ())
    return ", ".join(sorted(methods))


_CONNECTION_ERROR_NAMES = frozenset({
    "ConnectionDoesNotExistError", "CannotConnectNowError", "InterfaceError",
    "ConnectionFailureError", "TooManyConnectionsError", "PostgresConnectionError",
})


def is_dependency_down(exc: BaseException) -> bool:
    """A lost or refused connection to the database or Redis, not a bug in a query."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    if isinstance(exc, PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or (
            exc.orig is not None and is_dependency_down(exc.orig))
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | RedisConnectionError
                  | RedisTimeoutError):
        return True
    return type(exc).__name__ in _CONNECTION_ERROR_NAMES


def install_handlers(app: FastAPI) -> None:
    async def on_problem(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return render(exc)

    async def on_validation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if _is_malformed_json(exc):
            return render(MalformedBody())
        return render(ValidationFailed(errors=_validation_items(exc)))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
            return render(MalformedBody())  # not UTF-8, nested too deep...: as any bad JSON
        code, title = _FRAMEWORK_CODES.get(
            exc.status_code, ("http_error", HTTPStatus(exc.status_code).phrase)
        )
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(exc.status_code, code, title, detail, headers=headers)

    async def on_unhandled(_request: Request, exc: Exception) -> Response:
        if is_dependency_down(exc):
            log.warning("dependency_unavailable", error=type(exc).__name__)
            return render(DependencyUnavailable("A service this request needs is unreachable"))
        log.error("unhandled_error", exc_info=exc)
        return problem_response(500, "internal_error", "Internal server error")

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unhandled)


def responses(*errors: type[ProblemError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the errors a route can return (422 and 500 are always listed)."""
    documented: dict[int | str, dict[str, Any]] = {}
    listed: tuple[type[ProblemError], ...] = (*errors, ValidationFailed)
    for error in listed:
        entry = documented.setdefault(
            error.status,
            {"model": Problem, "description": error.title},
        )
        codes = entry.setdefault("x-codes", [])
        if error.code not in codes:
            codes.append(error.code)
    documented[500] = {"model": Problem, "description": "Internal server error"}
    return documented
