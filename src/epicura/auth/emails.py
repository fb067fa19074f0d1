"""The e-mails of the auth module, sent by the job runner (never inside a request)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.runtime import Runtime

EMAIL_JOB = "auth.email"

TEMPLATES: dict[str, tuple[str, str]] = {
    "verify_email": (
        "Confirm your Epicura e-mail address",
        "Hello {name},\n\nconfirm your address by opening this link within 24 hours:\n{link}\n\n"
        "If you did not create an Epicura account, ignore this message.\n",
    ),
    "already_registered": (
        "Someone tried to register with your e-mail",
        "Hello {name},\n\nsomeone tried to create an Epicura account with this address, which "
        "already has one. If it was you, sign in or reset your password:\n{reset_page}\n\n"
        "If not, you can ignore this message; your account is unchanged.\n",
    ),
    "reset_password": (
        "Reset your Epicura password",
        "Hello {name},\n\nopen this link within 30 minutes to choose a new password:\n{link}\n\n"
        "If you did not ask for this, ignore this message; your password is unchanged.\n",
    ),
    "password_changed": (
        "Your Epicura password was changed",
        "Hello {name},\n\nyour password was changed and every device was signed out.\n"
        "If this was not you, reset your password now: {reset_page}\n",
    ),
    "token_reuse": (
        "We signed out one of your devices",
        'Hello {name},\n\nan old sign-in token of the session "{session_name}" was used again, '
        "which can mean it was copied. We ended that session. If you do not recognise this, "
        "change your password.\n",
    ),
}


def queue_email(
    rt: Runtime,
    session: AsyncSession,
    *,
    to: str,
    template: str,
    name: str,
    link_path: str | None = None,
    token: str | None = None,
    **params: str,
) -> None:
    """Queue an e-mail in the caller's transaction. A link's token travels sealed."""
    payload = {"to": to, "template": template, "params": {"name": name, **params}}
    if link_path is not None:
        payload["link_path"] = link_path
    rt.jobs.enqueue(session, EMAIL_JOB, payload, secrets={"token": token} if token else None)
