"""Browser tests of the admin portal: the app on the embedded default under uvicorn in a thread
at a free port, and Debian's Chromium (installed by `./dev test`) driven by Playwright's sync API
with a fresh profile per test. Screenshots go to tests/e2e/artifacts/ (not committed)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import BrowserContext, Page, sync_playwright

from epicura.app import create_app
from epicura.auth import service as auth_service
from epicura.kit.runtime import Runtime
from epicura.realtime.protocol import UVICORN_WS_OPTIONS
from tests.conftest import base_settings, free_port
from tests.support import API, STRONG_PASSWORD, Mailbox, bearer

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say for this closed network: no background connections, no QUIC, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
ADMIN = "portal-e2e-admin@example.com"
COOK = "portal-e2e-cook@example.com"
MARKUP = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script>"
T = TypeVar("T")


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop
    seed: dict[str, str]

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the server's own event loop (its database and bus live there)."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)  # polling a condition, with the deadline above


def _seed(server: LiveServer) -> dict[str, str]:
    """An admin, a cook whose name is markup, an official recipe, two appliances."""

    async def make_admin() -> None:
        async with server.runtime.db.transaction() as session:
            await auth_service.create_admin(server.runtime, session, ADMIN, STRONG_PASSWORD,
                                            "Portal Admin")

    server.call(make_admin())
    with httpx2.Client(base_url=server.url, timeout=30) as client:
        reply = client.post(f"{API}/auth/register", json={
            "email": COOK, "password": STRONG_PASSWORD, "display_name": MARKUP})
        assert reply.status_code == 202, reply.text
        login = client.post(f"{API}/auth/login", json={"email": ADMIN,
                                                       "password": STRONG_PASSWORD})
        headers = bearer(login.json())
        recipe = client.post(f"{API}/recipes", headers=headers, json={
            "title": "Tomato soup", "description": f"Smooth. {MARKUP}", "servings": 4,
            "is_official": True, "tags": ["quick"],
            "ingredients": [{"key": "tomato", "name": "Tomatoes", "quantity": 800, "unit": "g"}],
            "steps": [
                {"title": "Chop", "action": "blend", "params": {"speed": 5, "duration_s": 5}},
                {"title": "Cook", "action": "heat",
                 "params": {"temperature_c": 100, "duration_s": 900, "speed": 1}}]})
        assert recipe.status_code == 201, recipe.text
        imported = client.post(f"{API}/admin/appliances/import", headers=headers, json=[
            {"serial": "E2E-000001", "model": "epicura-1", "hw_revision": "rev-a",
             "factory_secret": "f" * 20},
            {"serial": "E2E-000002", "model": "epicura-1", "hw_revision": "rev-b",
             "factory_secret": "g" * 20}])
        assert imported.status_code == 200, imported.text
        fleet = client.get(f"{API}/admin/appliances", headers=headers,
                           params={"q": "E2E-000001"}).json()["items"]
    return {"recipe_id": recipe.json()["id"], "appliance_id": fleet[0]["id"]}


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory,
                smtp: tuple[int, Mailbox]) -> Iterator[LiveServer]:
    settings = base_settings(tmp_path_factory.mktemp("portal-e2e"), smtp[0],
                             log_level="WARNING", rate_limit_enabled=False)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on", access_log=False,
                                           **UVICORN_WS_OPTIONS))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),),
                              name="portal-e2e-uvicorn", daemon=True)
    thread.start()
    _until(lambda: server.started, "uvicorn to start")
    live = LiveServer(url=f"http://127.0.0.1:{port}", app=app, loop=loop, seed={})
    live.seed = _seed(live)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        loop.close()


@pytest.fixture(scope="module")
def browser_factory() -> Iterator[Callable[[], BrowserContext]]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `./dev test` installs it "
                    "(apt-get install -y chromium)")
    profiles: list[str] = []
    with sync_playwright() as playwright:

        def fresh() -> BrowserContext:
            profile = tempfile.mkdtemp(prefix="portal-e2e-chromium-")
            profiles.append(profile)
            return playwright.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900})

        yield fresh
    for profile in profiles:
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Browser:
    page: Page
    server: LiveServer
    console_errors: list[str]

    def go(self, path: str) -> None:
        self.page.goto(self.server.url + path)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def sign_in(self, email: str = ADMIN, password: str = STRONG_PASSWORD) -> None:
        self.go("/admin/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        # htmx posts the form: wait for the reply that sets the cookie before going on.
        with self.page.expect_response(lambda r: r.request.method == "POST"
                                       and r.url.endswith("/admin/login")):
            self.page.click("button[type=submit]")


@pytest.fixture
def browser(live_server: LiveServer,
            browser_factory: Callable[[], BrowserContext]) -> Iterator[Browser]:
    context = browser_factory()
    page = context.pages[0] if context.pages else context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield Browser(page, live_server, errors)
    finally:
        context.close()
