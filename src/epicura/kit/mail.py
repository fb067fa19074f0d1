"""Outgoing e-mail: SMTP when `SMTP_URL` is set, otherwise `.eml` files in a folder."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
import anyio

from epicura.kit import clock
from epicura.kit.ids import uuid7


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def compose(*, sender: str, to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    return message


class SmtpMailer:
    """`smtp://user:pass@host:port` (STARTTLS when offered) or `smtps://…` (implicit TLS)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            start_tls=None,
            timeout=15,
        )


class FolderMailer:
    """The embedded default: each message is written to `<folder>/<time>-<id>.eml`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> None:
        folder = anyio.Path(self.folder)
        await folder.mkdir(parents=True, exist_ok=True)
        name = f"{clock.utcnow():%Y%m%dT%H%M%S}-{uuid7().hex[:12]}.eml"
        await (folder / name).write_bytes(message.as_bytes())


def create_mailer(smtp_url: str | None, folder: Path) -> Mailer:
    return SmtpMailer(smtp_url) if smtp_url else FolderMailer(folder)
