"""The portal as an application mounted at `/admin`: its templates (autoescaped), its own strict
Content-Security-Policy (scripts, styles and connections from this site only: no inline script,
no CDN), and the pages it shows for the errors a visitor can meet."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicura.kit.errors import ProblemError
from epicura.kit.runtime import Runtime
from epicura.portal.access import CsrfRefused, NotAnAdmin, Portal, SignInRequired

HERE = Path(__file__).parent
PREFIX = "/admin"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")

templates = Jinja2Templates(env=Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
))


def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
           status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """A page (or, for htmx, a fragment); `portal` and `csrf` are always in its context."""
    portal: Portal | None = getattr(request.state, "portal", None)
    full = {"portal": portal, "csrf": portal.csrf if portal else None, "prefix": PREFIX,
            "htmx": request.headers.get("hx-request") == "true", **(context or {})}
    return templates.TemplateResponse(request, name, full, status_code=status, headers=headers)


class PortalHeaders:
    """The portal's Content-Security-Policy on everything it serves; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = scope["path"], scope.get("root_path", "")
        static = (path[len(root):] if path.startswith(root) else path).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"content-security-policy", CSP.encode())]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _sign_in(request: Request, _exc: Exception) -> Response:
    target = f"{PREFIX}/login"
    if request.method == "GET" and request.url.path.startswith(PREFIX):
        query = f"?{request.url.query}" if request.url.query else ""
        target += "?next=" + quote(request.url.path + query, safe="")
    if request.headers.get("hx-request") == "true":
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _not_admin(request: Request, _exc: Exception) -> Response:
    return render(request, "forbidden.html", status=403)


async def _csrf(request: Request, _exc: Exception) -> Response:
    return render(request, "error.html", {
        "status": 403, "title": "This form has expired",
        "detail": "The request did not carry this session's security token. Reload the page "
                  "and try again."}, status=403)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "retry-after"}
    return render(request, "error.html", {"status": exc.status, "title": exc.title,
                                          "detail": exc.detail if exc.detail != exc.title
                                          else None}, status=exc.status, headers=headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
    return render(request, "error.html", {"status": 422, "title": "The request is not valid",
                                          "detail": "; ".join(problems)}, status=422)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return render(request, "error.html", {"status": exc.status_code, "title": exc.detail,
                                          "detail": None}, status=exc.status_code)


def build(runtime: Runtime) -> FastAPI:
    """The portal application; the main app mounts it at `/admin`."""
    from epicura.portal import auth_routes, pages

    # Every template compiled now, once, rather than by the first request that needs it.
    for name in templates.env.list_templates():
        templates.env.get_template(name)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.state.settings = runtime.settings
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(NotAnAdmin, _not_admin)
    app.add_exception_handler(CsrfRefused, _csrf)
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.include_router(auth_routes.router)
    for router in pages.ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(PortalHeaders)
    return app
