"""Background jobs of the auth module."""

from __future__ import annotations

from typing import Any

from epicura.auth import service
from epicura.auth.emails import EMAIL_JOB, TEMPLATES
from epicura.auth.service import RESET_REQUEST_JOB, REVOCATION_REBUILD_JOB
from epicura.kit import jobs
from epicura.kit.mail import compose
from epicura.kit.runtime import Runtime


@jobs.handler(EMAIL_JOB)
async def send_email(ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    rt: Runtime = ctx.extras["runtime"]
    base = rt.settings.public_base_url.rstrip("/")
    subject, body = TEMPLATES[payload["template"]]
    params = {"reset_page": f"{base}/forgot-password", **payload["params"]}
    if "link_path" in payload:
        params["link"] = f"{base}{payload['link_path']}?token={payload.get('token', '')}"
    message = compose(
        sender=rt.settings.mail_from, to=payload["to"], subject=subject, text=body.format(**params)
    )
    await rt.mailer.send(message)


@jobs.handler(REVOCATION_REBUILD_JOB)
async def rebuild_revocations(ctx: jobs.JobContext, _payload: dict[str, Any]) -> None:
    rt: Runtime = ctx.extras["runtime"]
    await service.revocations(rt).rebuild()


@jobs.handler(RESET_REQUEST_JOB)
async def reset_request(ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    rt: Runtime = ctx.extras["runtime"]
    async with rt.db.transaction() as session:
        await service.send_reset_link(rt, session, payload["email"], payload["ip"])
