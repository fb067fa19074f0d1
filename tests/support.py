"""Test helpers: a local SMTP server, app clients and small shortcuts."""

from __future__ import annotations

import asyncio
import email
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import httpx2
from aiosmtpd.controller import Controller
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select

from epicura.app import create_app, job_context
from epicura.config import Settings
from epicura.kit import jobs
from epicura.kit.runtime import Runtime
from epicura.kit.schedule import Schedule

API = "/api/v1"
STRONG_PASSWORD = "correct horse battery staple"


class _Collector:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content)
        self.box.deliver(message)
        return "250 OK"


@dataclass
class Mailbox:
    """Messages received by the local SMTP server, waited for by recipient (no sleeping)."""

    messages: list[Message] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)

    def deliver(self, message: Message) -> None:
        with self._lock:
            self.messages.append(message)
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def to(self, address: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 15) -> list[Message]:
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                while len(found := self.to(address)) < count:
                    await event.wait()
                    event.clear()
            return found
        finally:
            with self._lock:
                self._waiters.remove(entry)


def start_smtp(port: int) -> tuple[Controller, Mailbox]:
    box = Mailbox()
    controller = Controller(_Collector(box), hostname="127.0.0.1", port=port)
    controller.start()
    return controller, box


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def token_in(message: Message) -> str:
    match = re.search(r"token=([A-Za-z0-9_-]+)", body_of(message))
    assert match, body_of(message)
    return match.group(1)


@dataclass
class Service:
    """One running app with a client, its runtime and the test's mailbox."""

    app: FastAPI
    client: httpx2.AsyncClient
    runtime: Runtime
    mailbox: Mailbox

    async def run_jobs(self) -> int:
        """Run every due job now (what `epicura worker` does), until none is left."""
        total = 0
        while ran := await jobs.run_due(job_context(self.runtime)):
            total += ran
        return total

    async def register(
        self, email_address: str, password: str = STRONG_PASSWORD, name: str = "Test Cook"
    ) -> httpx2.Response:
        return await self.client.post(
            f"{API}/auth/register",
            json={"email": email_address, "password": password, "display_name": name},
        )

    async def login(
        self, email_address: str, password: str = STRONG_PASSWORD, session_name: str = "pytest"
    ) -> httpx2.Response:
        return await self.client.post(
            f"{API}/auth/login",
            json={"email": email_address, "password": password, "session_name": session_name},
        )

    async def signed_up(
        self, email_address: str, password: str = STRONG_PASSWORD
    ) -> dict[str, Any]:
        """Register and log in; returns the token pair."""
        assert (await self.register(email_address, password)).status_code == 202
        reply = await self.login(email_address, password)
        assert reply.status_code == 200, reply.text
        tokens: dict[str, Any] = reply.json()
        return tokens


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    access = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {access}"}


@asynccontextmanager
async def running(
    settings: Settings, mailbox: Mailbox, *, run_jobs: bool = False, client_ip: str = "127.0.0.1"
) -> AsyncIterator[Service]:
    app = create_app(settings, run_jobs=run_jobs)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx2.ASGITransport(app=manager.app, client=(client_ip, 40000))
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Service(app=app, client=client, runtime=app.state.runtime, mailbox=mailbox)


async def startup_tasks_done(service: Service) -> None:
    """The embedded runner starts its periodic tasks (rollups, pruning, sweeps) at once: wait
    until each has finished its first run, so a test's own writes and frozen clock do not race
    them."""
    async with asyncio.timeout(30):
        while True:
            async with service.runtime.db.sessions() as session:
                pending = await session.scalar(select(func.count()).select_from(Schedule)
                                               .where(Schedule.last_finished_at.is_(None)))
                total = await session.scalar(select(func.count()).select_from(Schedule))
            if total and not pending:
                return
            await asyncio.sleep(0.05)  # polling a condition, with the deadline above
