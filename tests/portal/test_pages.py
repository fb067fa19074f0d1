"""The portal's pages over HTTP (the browser tests walk them too): each lists and filters on the
server, each action goes through the modules' services with the session's CSRF token, and text
from users is shown escaped everywhere."""

from __future__ import annotations

import html
import json
import re
import uuid
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from epicura.auth import service as auth_service
from epicura.kit import jobs
from epicura.kit.audit import AuditEvent
from tests.portal.support import ORIGIN, make_admin, page_csrf, sign_in
from tests.sessions.support import soup
from tests.support import API, Service, bearer

pytestmark = pytest.mark.anyio
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
async def portal(svc: Service) -> httpx2.AsyncClient:
    await sign_in(svc.client, await make_admin(svc))
    return svc.client


async def post(client: httpx2.AsyncClient, path: str, data: dict[str, Any] | None = None,
               referer: str = "/admin/") -> httpx2.Response:
    token = await page_csrf(client, referer)
    return await client.post(path, data={"csrf_token": token, **(data or {})},
                             headers={"Origin": ORIGIN})


async def test_every_page_renders_for_an_admin(portal: httpx2.AsyncClient) -> None:
    for path, marker in [("/admin/", "Dashboard"), ("/admin/users", "Users"),
                         ("/admin/appliances", "Appliances"), ("/admin/recipes", "Recipes"),
                         ("/admin/audit", "Audit log"), ("/admin/jobs", "Background jobs")]:
        reply = await portal.get(path)
        assert reply.status_code == 200, (path, reply.text[:500])
        assert f"<h1>{marker}</h1>" in reply.text, path
    bad = await portal.get("/admin/users", params={"role": "emperor"})
    assert bad.status_code == 422 and "The request is not valid" in bad.text


async def test_users_search_role_disable_and_revoke(svc: Service,
                                                    portal: httpx2.AsyncClient) -> None:
    tokens = await svc.signed_up("portal-page-cook@example.com")
    me = (await svc.client.get(f"{API}/users/me", headers=bearer(tokens))).json()
    listed = await portal.get("/admin/users", params={"q": "page-cook"})
    assert "portal-page-cook@example.com" in listed.text
    assert '<a href="/admin/users/' in listed.text
    assert ">portal-admin@example.com</a>" not in listed.text
    page = f"/admin/users/{me['id']}"
    reply = await post(portal, f"{page}/active", {"active": "false"}, page)
    assert reply.status_code == 303 and reply.headers["location"] == f"{page}?done=disabled"
    shown = await portal.get(reply.headers["location"])
    assert "The account was disabled" in shown.text and '<dd id="status">disabled' in shown.text
    refused = await svc.client.get(f"{API}/users/me", headers=bearer(tokens))
    assert refused.status_code == 401
    await post(portal, f"{page}/active", {"active": "true"}, page)
    tokens = (await svc.login("portal-page-cook@example.com")).json()
    reply = await post(portal, f"{page}/revoke-sessions", referer=page)
    assert reply.headers["location"] == f"{page}?done=revoked"
    assert (await svc.client.get(f"{API}/users/me", headers=bearer(tokens))).status_code == 401
    reply = await post(portal, f"{page}/role", {"role": "admin"}, page)
    assert '<dd id="role">admin' in (await portal.get(page)).text
    async with svc.runtime.db.sessions() as session:
        actions = set((await session.scalars(
            select(AuditEvent.action).where(AuditEvent.target_id == me["id"]))).all())
    assert {"admin.user.disabled", "admin.user.enabled", "admin.user.role_changed"} <= actions


async def test_an_admin_cannot_demote_themselves_and_sees_why(svc: Service,
                                                              portal: httpx2.AsyncClient) -> None:
    async with svc.runtime.db.sessions() as session:
        admin = await auth_service.search_users(session, q="portal-admin", role=None,
                                                active=None, after=None, limit=1)
    page = f"/admin/users/{admin[0].id}"
    reply = await post(portal, f"{page}/role", {"role": "user"}, page)
    assert reply.status_code == 409 and "Admins cannot demote or disable themselves" in reply.text


async def test_text_from_users_is_shown_escaped(svc: Service, portal: httpx2.AsyncClient) -> None:
    await svc.register("portal-xss@example.com", name=SCRIPT)
    tokens = (await svc.login("portal-xss@example.com")).json()
    created = await svc.client.post(f"{API}/recipes", json=soup(title=f"Soup {SCRIPT}"),
                                    headers=bearer(tokens))
    assert created.status_code == 201, created.text
    pages = [await portal.get("/admin/users", params={"q": "portal-xss"}),
             await portal.get("/admin/recipes", params={"q": "soup"}),
             await portal.get(f"/admin/recipes/{created.json()['id']}"),
             await portal.get("/admin/audit")]
    for reply in pages:
        assert reply.status_code == 200
        assert SCRIPT not in reply.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text
    assert "Soup &lt;script&gt;" in pages[1].text


async def test_chart_labels_are_json_data_not_markup(svc: Service,
                                                     portal: httpx2.AsyncClient) -> None:
    page = (await portal.get("/admin/")).text
    data = re.search(r'id="sessions-chart" data-chart="([^"]*)"', page)
    assert data is not None
    assert "&#34;kind&#34;: &#34;bars&#34;" in data.group(1) and "<" not in data.group(1)
    spec = json.loads(html.unescape(data.group(1)))
    assert len(spec["x"]) == 30 and spec["series"][0]["label"] == "sessions"


async def test_recipe_edit_validation_at_the_step_save_publish_and_restore(
        svc: Service, portal: httpx2.AsyncClient) -> None:
    headers = bearer((await svc.login("portal-admin@example.com")).json())
    created = await svc.client.post(f"{API}/recipes", json={**soup(), "is_official": True},
                                    headers=headers)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    page = f"/admin/recipes/{rid}"
    form = await portal.get(page)
    assert 'name="step-2-params"' in form.text

    def fields(**overrides: str) -> dict[str, str]:
        base = {"version": "1", "title": "Tomato soup", "description": "Smooth.",
                "servings": "4", "prep_minutes": "0", "difficulty": "easy",
                "visibility": "public", "tags": "quick", "step_count": "4"}
        steps = soup()["steps"]
        for i, step in enumerate(steps):
            base.update({f"step-{i}-title": step["title"], f"step-{i}-action": step["action"],
                         f"step-{i}-params": json.dumps(step["params"]),
                         f"step-{i}-start": "immediate", f"step-{i}-instruction": ""})
        base.update(overrides)
        return base

    # A malformed step: the message is shown inside that step's box.
    reply = await post(portal, page, fields(**{"step-2-params": '{"temperature_c": "hot"}'}),
                       page)
    assert reply.status_code == 422
    step_box = re.search(r'<fieldset class="step invalid" id="step-2">(.*?)</fieldset>',
                         reply.text, re.S)
    assert step_box and "temperature_c" in step_box.group(1), reply.text[-3000:]
    assert 'value="{&#34;temperature_c&#34;: &#34;hot&#34;}"' in reply.text  # kept as typed
    # Saved: a new version.
    reply = await post(portal, page, fields(title="Tomato soup, roasted",
                                            summary="Roasted"), page)
    assert reply.status_code == 303 and reply.headers["location"] == f"{page}?done=saved"
    # A stale form (version 1 again) is refused rather than overwriting version 2.
    stale = await post(portal, page, fields(title="Old"), page)
    assert stale.status_code == 409
    # A step beyond the appliance's limits: publishing names it at the step.
    hot = fields(version="2", **{"step-2-params": '{"temperature_c": 220, "duration_s": 60}'})
    assert (await post(portal, page, hot, page)).status_code == 303
    refused = await post(portal, f"{page}/publish", referer=page)
    assert refused.status_code == 422 and "Not published" in refused.text
    step_box = re.search(r'<fieldset class="step invalid" id="step-2">(.*?)</fieldset>',
                         refused.text, re.S)
    assert step_box and "180" in step_box.group(1)
    # The diff of version 3 against 2, then version 2 restored and published.
    diff = await portal.get(f"{page}/versions/3")
    assert "steps[2].params.temperature_c" in diff.text or "temperature_c" in diff.text
    reply = await post(portal, f"{page}/versions/2/restore", referer=page)
    assert reply.headers["location"] == f"{page}?done=restored"
    published = await post(portal, f"{page}/publish", referer=page)
    assert published.headers["location"] == f"{page}?done=published"
    body = (await svc.client.get(f"{API}/recipes/{rid}", headers=headers)).json()
    assert (body["status"], body["current_version"]) == ("published", 4)
    assert body["content"]["title"] == "Tomato soup, roasted"


async def test_appliances_filter_detail_and_decommission(svc: Service,
                                                         portal: httpx2.AsyncClient) -> None:
    headers = bearer((await svc.login("portal-admin@example.com")).json())
    rows = [{"serial": f"PRT-{uuid.uuid4().hex[:8].upper()}", "model": "epicura-1",
             "hw_revision": hw, "factory_secret": "s" * 20} for hw in ("rev-a", "rev-b")]
    imported = await svc.client.post(f"{API}/admin/appliances/import", json=rows, headers=headers)
    assert imported.status_code == 200, imported.text
    listed = await portal.get("/admin/appliances", params={"hw_revision": "rev-b"})
    assert rows[1]["serial"] in listed.text and rows[0]["serial"] not in listed.text
    link = re.search(r'href="/admin/appliances/([0-9a-f-]{36})"', listed.text)
    assert link
    page = f"/admin/appliances/{link.group(1)}"
    detail = await portal.get(page)
    assert detail.status_code == 200 and "Live telemetry" in detail.text
    config = re.search(r'data-live-telemetry="([^"]*)"', detail.text)
    assert config and json.loads(html.unescape(config.group(1)))["token"]
    reply = await post(portal, f"{page}/decommission", referer=page)
    assert reply.headers["location"] == f"{page}?done=decommissioned"
    assert '<dd id="lifecycle">decommissioned' in (await portal.get(page)).text


async def test_audit_filters_and_jobs_retry(svc: Service, portal: httpx2.AsyncClient) -> None:
    reply = await portal.get("/admin/audit", params={"action": "auth.login"})
    assert "<code>auth.login</code>" in reply.text
    assert "<code>auth.register</code>" not in reply.text
    async with svc.runtime.db.transaction() as session:
        job_id = svc.runtime.jobs.enqueue(session, "portal.test.nothing", {}).id
    async with svc.runtime.db.transaction() as session:
        job = await session.get(jobs.Job, job_id)
        assert job is not None
        job.state = jobs.DEAD
    dead = await portal.get("/admin/jobs", params={"state": "dead"})
    assert "portal.test.nothing" in dead.text
    reply = await post(portal, f"/admin/jobs/{job_id}/retry", referer="/admin/jobs")
    assert reply.headers["location"] == "/admin/jobs?done=retried"
    async with svc.runtime.db.sessions() as session:
        job = await session.get(jobs.Job, job_id)
        assert job is not None and job.state == jobs.QUEUED


async def test_a_mangled_recipe_form_is_a_page_not_a_crash(svc: Service,
                                                            portal: httpx2.AsyncClient) -> None:
    headers = bearer((await svc.login("portal-admin@example.com")).json())
    created = await svc.client.post(f"{API}/recipes", json={**soup(), "is_official": True},
                                    headers=headers)
    page = f"/admin/recipes/{created.json()['id']}"
    for fields in ({"version": "1", "step_count": "lots", "title": "x"},
                   {"version": "1", "step_count": "99999999999", "servings": "many"},
                   {"version": "x"}):
        reply = await post(portal, page, fields, page)
        assert reply.status_code in (409, 422), (fields, reply.status_code)
        assert "<h1>" in reply.text


async def test_bad_filters_are_a_422_page(portal: httpx2.AsyncClient) -> None:
    for path, params in [("/admin/audit", {"actor": "not-a-uuid"}),
                         ("/admin/users", {"q": "nul\x00byte"}),
                         ("/admin/recipes", {"q": "bell\x07"}),
                         ("/admin/appliances", {"q": "esc\x1b"}),
                         ("/admin/users", {"cursor": "garbage"}),
                         ("/admin/appliances", {"firmware": "<script>"})]:
        reply = await portal.get(path, params=params)
        assert reply.status_code in (400, 422), (path, params, reply.status_code)
        assert "<script>" not in reply.text
