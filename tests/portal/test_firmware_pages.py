"""The portal's firmware and rollout pages: the streamed upload (with its refusals on the page),
yanking, the rollout form, the state buttons and the progress fragment, each with the session's
CSRF token, for admins only, with text escaped."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from epicura.kit.audit import AuditEvent
from epicura.ota import keys
from epicura.ota import release_signing as rs
from tests.portal.support import ORIGIN, make_admin, page_csrf, sign_in
from tests.support import Service

pytestmark = pytest.mark.anyio
MARKUP = "<script>alert(1)</script>"
STAGE_FORM = {"stages-0-percent": "10", "stages-0-soak_s": "600",
              "stages-0-success_threshold": "0.9", "stages-0-failure_threshold": "0.2",
              "stages-1-percent": "100", "stages-1-soak_s": "0",
              "stages-1-success_threshold": "0.9", "stages-1-failure_threshold": "0.2"}


@pytest.fixture
async def portal(svc: Service) -> httpx2.AsyncClient:
    await sign_in(svc.client, await make_admin(svc))
    return svc.client


@pytest.fixture
async def key(svc: Service) -> Ed25519PrivateKey:
    key = rs.generate_key()
    async with svc.runtime.db.transaction() as session:
        await keys.add(session, rs.public_key_b64(key), "portal tests")
    return key


def parts(key: Ed25519PrivateKey, version: str, *, notes: str = "",
          signature: str | None = None) -> dict[str, tuple[str, bytes, str]]:
    binary = f"firmware {version} ".encode() * 2000
    manifest = rs.manifest_bytes(rs.describe_binary(binary), version=version, channel="stable",
                                 hw_revisions=["rev-a"], key=key, min_from_version=None,
                                 notes=notes or f"v{version}")
    return {"manifest": ("manifest.json", manifest, "application/json"),
            "signature": ("manifest.sig", (signature or rs.sign(key, manifest)).encode(),
                          "text/plain"),
            "binary": ("firmware.bin", binary, "application/octet-stream")}


async def upload(client: httpx2.AsyncClient, files: dict[str, Any], *,
                 token: str | None = None, in_query: bool = False) -> httpx2.Response:
    token = token if token is not None else await page_csrf(client, "/admin/firmware")
    if in_query:
        return await client.post("/admin/firmware", params={"csrf_token": token}, files=files,
                                 headers={"Origin": ORIGIN})
    return await client.post("/admin/firmware", files=files,
                             headers={"Origin": ORIGIN, "X-CSRF-Token": token})


async def post(client: httpx2.AsyncClient, path: str,
               data: dict[str, str] | None = None) -> httpx2.Response:
    token = await page_csrf(client, "/admin/rollouts")
    return await client.post(path, data={"csrf_token": token, **(data or {})},
                             headers={"Origin": ORIGIN})


async def uploaded(client: httpx2.AsyncClient, key: Ed25519PrivateKey, version: str,
                   notes: str = "") -> str:
    reply = await upload(client, parts(key, version, notes=notes))
    assert reply.status_code == 303, reply.text[:2000]
    found = re.fullmatch(r"/admin/firmware/([0-9a-f-]{36})\?done=uploaded",
                         reply.headers["location"])
    assert found, reply.headers["location"]
    return found.group(1)


async def test_pages_render_and_an_upload_streams_to_a_ready_release(
        portal: httpx2.AsyncClient, key: Ed25519PrivateKey) -> None:
    for path, marker in [("/admin/firmware", "Firmware"), ("/admin/rollouts", "Rollouts")]:
        reply = await portal.get(path)
        assert reply.status_code == 200, reply.text[:500]
        assert f"<h1>{marker}</h1>" in reply.text
    release_id = await uploaded(portal, key, "2.0.0", notes=f"Fixes {MARKUP}")
    page = await portal.get(f"/admin/firmware/{release_id}?done=uploaded")
    assert "it is ready" in page.text and '<dd id="status">ready' in page.text
    assert MARKUP not in page.text and html.escape(MARKUP) in page.text
    listed = await portal.get("/admin/firmware", params={"status": "ready"})
    assert f'href="/admin/firmware/{release_id}">2.0.0</a>' in listed.text
    assert "2.0.0" not in (await portal.get("/admin/firmware",
                                            params={"status": "yanked"})).text
    # The fallback of a page without script: the token in the query string, never the body.
    assert (await upload(portal, parts(key, "2.0.1"), in_query=True)).status_code == 303


async def test_a_refused_upload_is_shown_on_the_page_and_audited(
        svc: Service, portal: httpx2.AsyncClient, key: Ed25519PrivateKey) -> None:
    other = rs.generate_key()
    forged = parts(key, "3.0.0", signature=rs.sign(other, b"something else"))
    reply = await upload(portal, forged)
    assert reply.status_code == 422
    assert 'id="upload-error"' in reply.text and "signature" in reply.text.lower()
    await uploaded(portal, key, "3.0.0")
    again = await upload(portal, parts(key, "3.0.0"))
    assert again.status_code == 409 and 'id="upload-error"' in again.text
    missing = await upload(portal, {"manifest": parts(key, "3.0.1")["manifest"]})
    assert missing.status_code == 422 and "binary" in missing.text
    async with svc.runtime.db.sessions() as session:
        reasons = (await session.scalars(select(AuditEvent.action).where(
            AuditEvent.action == "firmware.upload_refused"))).all()
    assert len(reasons) >= 2


async def test_unsafe_requests_need_the_csrf_token(portal: httpx2.AsyncClient,
                                                   key: Ed25519PrivateKey) -> None:
    refused = await upload(portal, parts(key, "4.0.0"), token="forged")
    assert refused.status_code == 403 and "This form has expired" in refused.text
    bare = await portal.post("/admin/firmware", files=parts(key, "4.0.0"),
                             headers={"Origin": ORIGIN})
    assert bare.status_code == 403
    assert "4.0.0" not in (await portal.get("/admin/firmware")).text
    release_id = await uploaded(portal, key, "4.0.0")
    yank = await portal.post(f"/admin/firmware/{release_id}/yank", headers={"Origin": ORIGIN},
                             data={"csrf_token": "forged"})
    assert yank.status_code == 403
    create = await portal.post("/admin/rollouts", headers={"Origin": ORIGIN},
                               data={"release_id": release_id, "channel": "stable",
                                     "hw_revisions": "rev-a", **STAGE_FORM})
    assert create.status_code == 403


async def test_rollout_form_buttons_and_progress(svc: Service, portal: httpx2.AsyncClient,
                                                 key: Ed25519PrivateKey) -> None:
    release_id = await uploaded(portal, key, "5.0.0")
    offered = await portal.get("/admin/rollouts", params={"release": release_id})
    assert f'<option value="{release_id}" selected>' in offered.text
    bad = await post(portal, "/admin/rollouts", {
        "release_id": release_id, "channel": "stable", "hw_revisions": "rev-a",
        **STAGE_FORM, "stages-1-percent": "5"})
    assert bad.status_code == 422 and 'id="create-error"' in bad.text
    assert 'name="stages-1-percent" value="5"' in bad.text  # the form comes back as sent
    outside = await post(portal, "/admin/rollouts", {
        "release_id": release_id, "channel": "stable", "hw_revisions": "rev-z", **STAGE_FORM})
    assert outside.status_code == 422 and 'id="create-error"' in outside.text
    made = await post(portal, "/admin/rollouts", {
        "release_id": release_id, "channel": "stable", "hw_revisions": "rev-a",
        "tags": "", **STAGE_FORM})
    assert made.status_code == 303, made.text[:2000]
    detail = made.headers["location"].split("?")[0]
    page = await portal.get(made.headers["location"])
    assert "created as a draft" in page.text and '<dd id="state">draft' in page.text
    assert f'hx-get="{detail}/progress" hx-trigger="every 3s"' in page.text
    assert f'action="{detail}/start"' in page.text and f'action="{detail}/pause"' not in page.text
    for action, state in [("start", "active"), ("pause", "paused"), ("resume", "active")]:
        reply = await post(portal, f"{detail}/{action}")
        assert reply.status_code == 303 and reply.headers["location"] == \
            f"{detail}?done={action}"
        fragment = await portal.get(f"{detail}/progress", headers={"HX-Request": "true"})
        assert f'<dd id="state">{state}' in fragment.text and "<html" not in fragment.text
    assert 'data-stage="1"' in fragment.text and "1 of 2" in fragment.text
    wrong = await post(portal, f"{detail}/start")
    assert wrong.status_code == 409 and "cannot start" in wrong.text
    listed = await portal.get("/admin/rollouts", params={"state": "active"})
    assert f'href="{detail}"' in listed.text
    yanked = await post(portal, f"/admin/firmware/{release_id}/yank")
    assert yanked.headers["location"] == f"/admin/firmware/{release_id}?done=yanked"
    ended = await portal.get(f"{detail}/progress")
    assert '<dd id="state">aborted' in ended.text and "hx-trigger" not in ended.text
    async with svc.runtime.db.sessions() as session:
        actions = set((await session.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("%rollout%")))).all())
    assert actions, "the rollout's actions are audited"


async def test_a_cook_and_a_visitor_are_refused(svc: Service) -> None:
    client = svc.client
    await svc.signed_up("portal-firmware-cook@example.com")
    refused = await sign_in(client, "portal-firmware-cook@example.com")
    assert refused.status_code == 403 and "Admins only" in refused.text
    some = "01900000-0000-7000-8000-000000000000"
    for path in ("/admin/firmware", "/admin/rollouts", f"/admin/firmware/{some}",
                 f"/admin/rollouts/{some}", f"/admin/rollouts/{some}/progress"):
        reply = await client.get(path)
        assert reply.status_code == 303 and "/admin/login" in reply.headers["location"], path
    for path in ("/admin/firmware", "/admin/rollouts", f"/admin/firmware/{some}/yank",
                 f"/admin/rollouts/{some}/start"):
        reply = await client.post(path, headers={"Origin": ORIGIN}, data={"csrf_token": "x"})
        assert reply.status_code == 303 and "/admin/login" in reply.headers["location"], path
