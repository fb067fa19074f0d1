"""The appliance page's live chart: the page hands over a short-lived access token of the
admin's portal session; with it the gateway lets the admin follow any appliance's channel, and
the token dies with the portal session."""

from __future__ import annotations

import html
import json
import re
import uuid

import pytest

from epicura.realtime import channels
from tests.portal.support import make_admin, page_csrf, sign_in
from tests.realtime.conftest import pg_served  # noqa: F401 - the fixture, used below
from tests.realtime.ws_support import Served, socket

pytestmark = pytest.mark.anyio


async def live_config(served: Served, appliance_id: uuid.UUID) -> dict[str, str]:
    page = await served.svc.client.get(f"/admin/appliances/{appliance_id}")
    assert page.status_code == 200, page.text[:500]
    found = re.search(r'data-live-telemetry="([^"]*)"', page.text)
    assert found
    config: dict[str, str] = json.loads(html.unescape(found.group(1)))
    return config


async def test_an_admin_follows_anothers_appliance_until_signing_out(
        pg_served: Served) -> None:  # noqa: F811
    served = pg_served
    owner_id, _ = await served.user("owner")
    appliance_id = await served.appliance(owner_id)
    await sign_in(served.svc.client, await make_admin(served.svc))
    config = await live_config(served, appliance_id)
    assert config["ws_path"] == "/api/v1/ws" and config["appliance_id"] == str(appliance_id)
    refreshed = await served.svc.client.get(config["token_path"])
    assert refreshed.status_code == 200 and refreshed.json()["token"]
    async with socket(served) as client:
        assert (await client.auth(config["token"]))["type"] == "auth.ok"
        answer = await client.subscribe(f"appliance:{appliance_id}")
        assert answer["type"] == "subscribed", answer
        sample = {"t": 1_700_000_000_000, "bowl_temp_c": 42.5}
        await channels.publish(served.runtime, [(f"appliance:{appliance_id}", {
            "type": "telemetry",
            "data": {"appliance_id": str(appliance_id), "samples": [sample]}})])
        frame = await client.until(lambda f: f.get("type") == "telemetry")
        assert frame["data"]["samples"] == [sample]
        # Signing out of the portal ends the login session: the socket is closed.
        token = await page_csrf(served.svc.client)
        await served.svc.client.post("/admin/logout", headers={"X-CSRF-Token": token})
        assert await client.close_code() == 4401


async def test_a_cook_still_cannot_follow_anothers_appliance(pg_served: Served) -> None:  # noqa: F811
    owner_id, _ = await pg_served.user("owner")
    _, stranger = await pg_served.user("stranger")
    appliance_id = await pg_served.appliance(owner_id)
    async with socket(pg_served) as client:
        assert (await client.auth(stranger))["type"] == "auth.ok"
        answer = await client.subscribe(f"appliance:{appliance_id}")
        assert answer["type"] == "error" and answer["data"]["code"] == "not_found"
